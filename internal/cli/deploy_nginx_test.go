package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The shipped NGINX config's addresses, which the test replaces by free
// ports (nothing else of the file is changed).
const (
	nginxListen   = "listen 8080;"
	nginxReplicaA = "server 127.0.0.1:8081 "
	nginxReplicaB = "server 127.0.0.1:8082 "
)

// findNginx returns the nginx binary, or skips the test.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("nginx is not installed: the deploy/nginx test runs the real one (Debian: apt-get install nginx-light; .ci/run installs it)")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startNginx runs nginx in the foreground with deploy/nginx/masque.conf,
// its ports replaced, inside a minimal main config.
func startNginx(t *testing.T, bin string, listen int, replicas [2]string) string {
	t.Helper()
	conf, err := os.ReadFile("../../deploy/nginx/masque.conf")
	if err != nil {
		t.Fatal(err)
	}
	c := string(conf)
	for _, r := range []struct{ old, new string }{
		{nginxListen, fmt.Sprintf("listen 127.0.0.1:%d;", listen)},
		{nginxReplicaA, "server " + replicas[0] + " "},
		{nginxReplicaB, "server " + replicas[1] + " "},
	} {
		if n := strings.Count(c, r.old); n != 1 {
			t.Fatalf("deploy/nginx/masque.conf has %q %d times, want once (the test templates only these)", r.old, n)
		}
		c = strings.Replace(c, r.old, r.new, 1)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "masque.conf"), []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers as root can use the test's private temp folder
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 512; }
http {
    access_log %[2]s/access.log;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/masque.conf;
}
`, user, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT) // graceful stop of master and worker
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", listen)
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			so, _ := os.ReadFile(filepath.Join(dir, "stdout"))
			t.Fatalf("nginx exited: %s\n%s", so, log)
		default:
		}
		if time.Now().After(end) {
			t.Fatal("nginx did not listen within 20 s")
		}
	}
}

// reply is one request through the balancer.
type reply struct {
	session  string
	upstream string // X-Masque-Upstream: the replicas tried, the last answered
	status   int
	ok       bool // a complete answer: JSON with a choice, or a stream ending in [DONE]
	body     string
	err      error
	sent     time.Time // when the request was sent
}

func (r reply) answeredBy() string {
	parts := strings.Split(r.upstream, ", ")
	return parts[len(parts)-1]
}

// chatVia sends a chat request through the balancer; with started, a
// stream's first line is read and started closed before the rest is read.
func chatVia(addr, key, session string, stream bool, maxTokens int, started chan struct{}) reply {
	body := fmt.Sprintf(`{"model":"base","stream":%v,"max_tokens":%d,"temperature":0.8,"messages":[{"role":"user","content":"Once upon a time %s"}]}`, stream, maxTokens, session)
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Session-ID", session)
	r := reply{session: session, sent: time.Now()}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.err = err
		return r
	}
	defer resp.Body.Close()
	r.status, r.upstream = resp.StatusCode, resp.Header.Get("X-Masque-Upstream")
	rd := bufio.NewReader(resp.Body)
	first := ""
	if started != nil {
		first, err = rd.ReadString('\n')
		close(started)
		if err != nil {
			r.body, r.err = first, err
			return r
		}
	}
	data, err := io.ReadAll(rd)
	data = append([]byte(first), data...)
	r.body, r.err = string(data), err
	if err != nil || resp.StatusCode != 200 {
		return r
	}
	if stream {
		r.ok = strings.HasSuffix(r.body, "data: [DONE]\n\n") && !strings.Contains(r.body, `"error"`)
	} else {
		var v struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			}
		}
		r.ok = json.Unmarshal(data, &v) == nil && len(v.Choices) == 1 && v.Choices[0].FinishReason != ""
	}
	return r
}

// TestDeployNginx runs deploy/nginx/masque.conf in a real nginx in front
// of two real `masque serve` processes (this test binary re-executed as
// masque, with the flags deploy/ recommends: an API key, a drain delay, a
// shutdown grace) and checks what deploy/README.md says is tested:
//  1. affinity: every request of a session (X-Session-ID) is answered by
//     one replica, and the sessions use both;
//  2. drain: SIGTERM to one replica while requests of every session keep
//     coming and a long stream is under way on it fails none of them (its
//     own finish, the stream with its [DONE]; it exits 0);
//  3. takeover: after it exited, its sessions are answered by the other.
func TestDeployNginx(t *testing.T) {
	nginx := findNginx(t)
	if testing.Short() {
		t.Skip("starts two servers and nginx (-short)")
	}
	const key = "sk-deploy-test"
	var addrs [2]string
	var replicas [2]*child
	for i := range replicas {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		replicas[i] = startChild(t, "serve", "--model", "builtin:stories260K", "--addr", addrs[i], "--api-key", key, "--no-playground",
			"--drain-delay", "1s", "--shutdown-grace", "20s")
	}
	for _, c := range replicas {
		c.waitFor(t, regexp.MustCompile(`on http://(\S+) `), time.Minute)
	}
	lb := startNginx(t, nginx, freePort(t), addrs)
	// The probes need no key; through the balancer too.
	if resp, err := http.Get("http://" + lb + "/health/ready"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/health/ready through nginx: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	// 1. Affinity.
	sessions := make([]string, 16)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("npc-%02d", i)
	}
	owner := map[string]string{}
	perReplica := map[string][]string{}
	for round := 0; round < 3; round++ {
		for _, s := range sessions {
			r := chatVia(lb, key, s, round == 1, 8, nil)
			if !r.ok {
				t.Fatalf("session %s: %d %v %q (upstream %q)", s, r.status, r.err, r.body, r.upstream)
			}
			if strings.Contains(r.upstream, ",") {
				t.Fatalf("session %s was retried (%s) with both replicas up", s, r.upstream)
			}
			if o, seen := owner[s]; seen && o != r.upstream {
				t.Errorf("affinity broken: session %s went to %s, then to %s", s, o, r.upstream)
			} else if !seen {
				owner[s] = r.upstream
				perReplica[r.upstream] = append(perReplica[r.upstream], s)
			}
		}
	}
	if len(perReplica[addrs[0]]) == 0 || len(perReplica[addrs[1]]) == 0 || len(perReplica) != 2 {
		t.Fatalf("the sessions did not spread over the two replicas %v: %v", addrs, perReplica)
	}
	t.Logf("sessions per replica: %s %d, %s %d", addrs[0], len(perReplica[addrs[0]]), addrs[1], len(perReplica[addrs[1]]))

	// 2. SIGTERM to replica 0 under load from every session.
	victim, heir := addrs[0], addrs[1]
	stop := make(chan struct{})
	var mu sync.Mutex
	var replies []reply
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := chatVia(lb, key, sessions[i%len(sessions)], i%2 == 0, 24, nil)
				mu.Lock()
				replies = append(replies, r)
				mu.Unlock()
			}
		}()
	}
	// And one long stream of a session of the victim, under way at SIGTERM.
	started, long := make(chan struct{}), make(chan reply, 1)
	go func() { long <- chatVia(lb, key, perReplica[victim][0], true, 400, started) }()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the long stream did not start")
	}
	time.Sleep(200 * time.Millisecond)
	code := replicas[0].terminate(t, time.Minute)
	exited := time.Now()
	time.Sleep(1500 * time.Millisecond) // the heir serves on alone
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Errorf("replica %s exited %d after SIGTERM, want 0:\n%s", victim, code, replicas[0].stderr())
	}

	if r := <-long; !r.ok || r.upstream != victim {
		t.Errorf("the stream under way on %s at SIGTERM: upstream %q, status %d, %v, complete %v: %.300s", victim, r.upstream, r.status, r.err, r.ok, r.body)
	}
	var failed, byVictim, retried int
	after := map[string]int{}
	for _, r := range replies {
		if !r.ok {
			failed++
			if failed <= 5 {
				t.Errorf("failed request of %s: status %d, %v, upstream %q: %.300s", r.session, r.status, r.err, r.upstream, r.body)
			}
			continue
		}
		if strings.Contains(r.upstream, ",") {
			retried++
		}
		if r.answeredBy() == victim {
			byVictim++
		}
		if r.sent.After(exited) && owner[r.session] == victim {
			after[r.answeredBy()]++
		}
	}
	t.Logf("%d requests during the drain: %d failed, %d answered by the draining replica, %d retried by nginx on the other; after it exited, its sessions were answered %v",
		len(replies), failed, byVictim, retried, after)
	if failed > 0 {
		t.Fatalf("%d of %d requests failed during the drain", failed, len(replies))
	}
	if byVictim == 0 {
		t.Error("the draining replica answered nothing: the drain was not exercised")
	}
	// 3. Takeover.
	if after[heir] == 0 || len(after) != 1 {
		t.Errorf("after %s exited its sessions were answered by %v, want all by %s", victim, after, heir)
	}
}
