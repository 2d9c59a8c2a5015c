package hub

import (
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
)

// globRegexp translates a shell pattern with Python fnmatch's meaning, which
// huggingface_hub's allow/ignore patterns use: '*' matches any run of
// characters, '/' included; '?' one character; [seq] and [!seq] a set. A
// pattern ending in '/' matches everything under that folder.
func globRegexp(pat string) (*regexp.Regexp, error) {
	if strings.HasSuffix(pat, "/") {
		pat += "*"
	}
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(pat) && pat[j] == '!' {
				j++
			}
			if j < len(pat) && pat[j] == ']' {
				j++
			}
			for j < len(pat) && pat[j] != ']' {
				j++
			}
			if j >= len(pat) { // no closing bracket: a literal '['
				b.WriteString(`\[`)
				continue
			}
			set := pat[i+1 : j]
			i = j
			neg := strings.HasPrefix(set, "!")
			if neg {
				set = set[1:]
			}
			set = strings.ReplaceAll(set, `\`, `\\`)
			set = strings.ReplaceAll(set, `[`, `\[`)
			if neg {
				b.WriteString(`[^` + set + `]`)
			} else if strings.HasPrefix(set, "^") {
				b.WriteString(`[\` + set + `]`)
			} else {
				b.WriteString(`[` + set + `]`)
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("bad file pattern %q: %v", pat, err)
	}
	return re, nil
}

type globs []*regexp.Regexp

func compileGlobs(pats []string) (globs, error) {
	var g globs
	for _, p := range pats {
		re, err := globRegexp(p)
		if err != nil {
			return nil, err
		}
		g = append(g, re)
	}
	return g, nil
}

func (g globs) match(name string) bool {
	for _, re := range g {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}

// foreignWeights are files of a repository that also holds safetensors which
// masque cannot use: other frameworks' copies of the same weights, and GGUF
// conversions (the folder is what opens). A plain pull skips them.
var foreignWeights = []string{
	"*.bin", "*.pt", "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.ot", "*.onnx", "*.onnx_data",
	"*.tflite", "*.mlmodel", "*.gguf", "onnx/", "openvino/", "coreml/", "*.mlpackage/*", "original/",
}

func isGGUF(name string) bool { return strings.EqualFold(path.Ext(name), ".gguf") }

// isModelGGUF: a GGUF file holding a language model, not a vision projector.
func isModelGGUF(name string) bool {
	return isGGUF(name) && !strings.Contains(strings.ToLower(path.Base(name)), "mmproj")
}

var splitSuffix = regexp.MustCompile(`(?i)-\d{5}-of-\d{5}$`)

// ggufStem is a GGUF file's base name without ".gguf" and without the
// "-00001-of-00003" of split files.
func ggufStem(name string) string {
	base := path.Base(name)
	return splitSuffix.ReplaceAllString(base[:len(base)-len(path.Ext(base))], "")
}

// matchesQuant reports whether a GGUF file is of quantisation tag q, as
// llama.cpp's -hf repo:TAG chooses: the tag, case-insensitively, standing as
// a whole word in the file's path ("Q4_K" does not choose "Q4_K_M").
func matchesQuant(name, q string) bool {
	if !isModelGGUF(name) {
		return false
	}
	low := strings.ToLower(path.Join(path.Dir(name), ggufStem(name)))
	q = strings.ToLower(q)
	for from := 0; ; {
		i := strings.Index(low[from:], q)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(q)
		beforeOK := i == 0 || strings.ContainsRune("-._/", rune(low[i-1]))
		afterOK := end == len(low) || strings.ContainsRune("-./", rune(low[end]))
		if beforeOK && afterOK {
			return true
		}
		from = i + 1
	}
}

// quantTags names the quantisations among GGUF files, for messages: the last
// '-' or '.' separated word of each stem ("Qwen2.5-0.5B-Instruct-Q4_K_M" →
// "Q4_K_M").
func quantTags(names []string) []string {
	seen := map[string]bool{}
	var tags []string
	for _, n := range names {
		if !isModelGGUF(n) {
			continue
		}
		s := ggufStem(n)
		if i := strings.LastIndexAny(s, "-."); i >= 0 {
			s = s[i+1:]
		}
		if !seen[s] {
			seen[s] = true
			tags = append(tags, s)
		}
	}
	sort.Strings(tags)
	return tags
}

// laterSplitPart reports whether a GGUF file is a second or later part of a
// split file ("-00002-of-00003.gguf").
func laterSplitPart(name string) bool {
	m := splitSuffix.FindString(strings.TrimSuffix(path.Base(name), path.Ext(name)))
	return m != "" && !strings.HasPrefix(m, "-00001-")
}
