package chattemplate

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// compat.json holds small Jinja probes rendered by Python Jinja2 set up like
// transformers (see testdata/gen_compat.py). Each must render identically,
// or fail where Python fails.
type compatCase struct {
	Name     string                     `json:"name"`
	Template string                     `json:"template"`
	Vars     map[string]json.RawMessage `json:"vars"`
	Want     *string                    `json:"want"`
	Error    string                     `json:"error"`
}

// knownDifferences are probes where this package deliberately or
// unavoidably differs from Python Jinja2, with the reason.
var knownDifferences = map[string]string{
	"print_none_literal":              "None and Undefined are both nil: None prints as empty",
	"dict_get":                        "None and Undefined are both nil: None prints as empty",
	"f_default_none":                  "None and Undefined are both nil: default() replaces None",
	"tools_none":                      "None and Undefined are both nil: a None variable is not defined",
	"err_undefined_attr_of_undefined": "attribute of undefined is undefined, not an error",
	"percent_format":                  "None and Undefined are both nil: None prints as empty",
	"f_length_none":                   "None and Undefined are both nil: length of None is 0 like length of undefined",
	"loop_depth":                      "gonja counts nested loops in loop.depth; Jinja2 only counts recursive loop levels",
}

var compatNow = time.Date(2024, 7, 5, 9, 3, 7, 0, time.UTC)

func loadCompat(t testing.TB) []compatCase {
	t.Helper()
	b, err := os.ReadFile("testdata/compat.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []compatCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestPythonJinjaCompat(t *testing.T) {
	for _, c := range loadCompat(t) {
		t.Run(c.Name, func(t *testing.T) {
			if why, ok := knownDifferences[c.Name]; ok {
				t.Skip(why)
			}
			vars := map[string]any{}
			for k, v := range c.Vars {
				vars[k] = v
			}
			got, err := renderWithNow(c.Template, vars)
			if c.Want == nil {
				if err == nil {
					t.Fatalf("Python fails with %q; got no error and %q", c.Error, got)
				}
				if strings.HasPrefix(c.Error, "TemplateError: ") {
					var e *Error
					if !errors.As(err, &e) || !e.Raised || e.Msg != strings.TrimPrefix(c.Error, "TemplateError: ") {
						t.Fatalf("want raised %q, got %v", c.Error, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("template %q: %v", c.Template, err)
			}
			if got != *c.Want {
				t.Fatalf("template %q\n got %q\nwant %q", c.Template, got, *c.Want)
			}
		})
	}
}

func renderWithNow(src string, vars map[string]any) (string, error) {
	tpl, err := New(src)
	if err != nil {
		return "", err
	}
	return tpl.execute(vars, compatNow)
}
