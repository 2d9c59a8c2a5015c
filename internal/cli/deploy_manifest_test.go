package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

// serveArgs parses args (without "serve") as `masque serve` does and
// returns the checked options' drain delay and grace and the address.
func serveArgs(t *testing.T, where string, args []string) (drain, grace time.Duration, addr string) {
	t.Helper()
	f := &serveFlags{}
	c := &cobra.Command{Use: "serve"}
	f.register(c)
	if err := c.ParseFlags(args); err != nil {
		t.Fatalf("%s: masque serve refuses its arguments %q: %v", where, args, err)
	}
	if len(c.Flags().Args()) > 0 {
		t.Fatalf("%s: stray arguments %q", where, c.Flags().Args())
	}
	o, err := f.options()
	if err != nil {
		t.Fatalf("%s: masque serve refuses its arguments %q: %v", where, args, err)
	}
	return o.DrainDelay, o.ShutdownGrace, f.addr
}

// TestDeployKubernetesManifest checks deploy/kubernetes/masque.yaml for
// what can be checked without a cluster: masque accepts the container's
// arguments; the kubelet waits longer than the drain delay and the
// shutdown grace together before SIGKILL; the probes ask the endpoints that
// need no key, on the port masque listens on; the Services point there.
func TestDeployKubernetesManifest(t *testing.T) {
	t.Setenv("MASQUE_API_KEY", "sk-from-the-secret") // as the manifest's env does
	data, err := os.ReadFile("../../deploy/kubernetes/masque.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
	}
	type doc struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Selector any `yaml:"selector"`
			Ports    []struct {
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
			Template struct {
				Spec struct {
					Grace      *int `yaml:"terminationGracePeriodSeconds"`
					Containers []struct {
						Args  []string `yaml:"args"`
						Ports []struct {
							Name string `yaml:"name"`
							Port int    `yaml:"containerPort"`
						} `yaml:"ports"`
						Env []struct {
							Name string `yaml:"name"`
						} `yaml:"env"`
						Startup   *probe `yaml:"startupProbe"`
						Liveness  *probe `yaml:"livenessProbe"`
						Readiness *probe `yaml:"readinessProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	kinds := map[string]int{}
	for {
		var d doc
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("masque.yaml: %v", err)
		}
		kinds[d.Kind]++
		switch d.Kind {
		case "Deployment":
			ps := d.Spec.Template.Spec
			if len(ps.Containers) != 1 || ps.Grace == nil {
				t.Fatalf("Deployment: %d containers, terminationGracePeriodSeconds %v", len(ps.Containers), ps.Grace)
			}
			ct := ps.Containers[0]
			if len(ct.Args) == 0 || ct.Args[0] != "serve" {
				t.Fatalf("the container's args %q do not run masque serve", ct.Args)
			}
			drain, grace, addr := serveArgs(t, "Deployment", ct.Args[1:])
			if drain <= 0 {
				t.Error("no --drain-delay: the pod would stop accepting before the Service's endpoints drop it")
			}
			if got, need := time.Duration(*ps.Grace)*time.Second, drain+grace; got <= need {
				t.Errorf("terminationGracePeriodSeconds %v does not exceed --drain-delay + --shutdown-grace = %v: requests in flight would be killed", got, need)
			}
			_, port, _ := net.SplitHostPort(addr)
			if len(ct.Ports) != 1 || ct.Ports[0].Name != "http" || port != "8080" || ct.Ports[0].Port != 8080 {
				t.Errorf("containerPort %+v, masque listens on %s", ct.Ports, addr)
			}
			for name, p := range map[string]*probe{"startup": ct.Startup, "liveness": ct.Liveness, "readiness": ct.Readiness} {
				want := "/health/live"
				if name == "readiness" {
					want = "/health/ready"
				}
				if p == nil || p.HTTPGet.Path != want || p.HTTPGet.Port != "http" {
					t.Errorf("%s probe %+v, want GET %s on port http", name, p, want)
				}
			}
			hasKey := false
			for _, e := range ct.Env {
				hasKey = hasKey || e.Name == "MASQUE_API_KEY"
			}
			if !hasKey {
				t.Error("no MASQUE_API_KEY: masque refuses to listen on 0.0.0.0 without a key")
			}
		case "Service":
			if len(d.Spec.Ports) != 1 || d.Spec.Ports[0].TargetPort != "http" || d.Spec.Selector == nil {
				t.Errorf("Service ports %+v selector %v", d.Spec.Ports, d.Spec.Selector)
			}
		}
	}
	if kinds["Deployment"] != 1 || kinds["Service"] != 2 {
		t.Errorf("kinds %v, want a Deployment and two Services", kinds)
	}
}

// TestDeployDockerfile checks deploy/Dockerfile without a Docker daemon:
// the binary is built static (CGO_ENABLED=0) for a distroless/static or
// scratch image, runs as a non-root user, has no HEALTHCHECK, and masque
// accepts its default command, whose drain and grace fit in the 40 s stop
// timeout the file recommends. (That the build gives a static binary that
// serves as uid 65532 with an empty environment was checked by hand:
// deploy/README.md.)
func TestDeployDockerfile(t *testing.T) {
	data, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FROM golang:\S+ AS build$`),
		regexp.MustCompile(`(?m)^RUN CGO_ENABLED=0 go build .*\./cmd/masque$`),
		regexp.MustCompile(`(?m)^FROM (gcr\.io/distroless/static\S*|scratch)$`),
		regexp.MustCompile(`(?m)^USER [1-9][0-9]*:[1-9][0-9]*$`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/masque"\]$`),
	} {
		if !want.MatchString(df) {
			t.Errorf("deploy/Dockerfile has no line matching %s", want)
		}
	}
	if regexp.MustCompile(`(?mi)^HEALTHCHECK`).MatchString(df) {
		t.Error("deploy/Dockerfile has a HEALTHCHECK: the orchestrator probes instead")
	}
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(df)
	if m == nil {
		t.Fatal("deploy/Dockerfile has no CMD [...] line")
	}
	var cmd []string
	if err := json.Unmarshal([]byte(m[1]), &cmd); err != nil || len(cmd) == 0 || cmd[0] != "serve" {
		t.Fatalf("CMD %s: %v", m[1], err)
	}
	t.Setenv("MASQUE_API_KEY", "sk-x")
	drain, grace, _ := serveArgs(t, "Dockerfile CMD", cmd[1:])
	if drain+grace >= 40*time.Second || !strings.Contains(df, "docker stop -t 40") {
		t.Errorf("--drain-delay %v + --shutdown-grace %v against the documented stop timeout of 40 s", drain, grace)
	}
}
