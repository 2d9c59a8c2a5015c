package generate

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/masque-ai/masque/model"
)

const (
	storiesModel = "../testdata/stories260K/stories260K.bin"
	storiesTok   = "../testdata/stories260K/tok512.bin"
	storiesGold  = "../testdata/stories260K/golden.json"
)

type goldenCase struct {
	Name             string `json:"name"`
	Prompt           string `json:"prompt"`
	PromptIDs        []int  `json:"prompt_ids"`
	GeneratedIDs     []int  `json:"generated_ids"`
	GeneratedTextRaw string `json:"generated_text_raw"`
}

var (
	storiesOnce sync.Once
	storiesM    *model.Model
	storiesG    []goldenCase
	storiesV    *byteVocab
	storiesErr  error
)

// stories loads the stories260K model, its golden cases and a test decoder
// for tok512.bin, once per test binary.
func stories(t testing.TB) (*model.Model, []goldenCase, *byteVocab) {
	t.Helper()
	storiesOnce.Do(func() {
		storiesM, storiesErr = model.LoadLlama2C(storiesModel)
		if storiesErr != nil {
			return
		}
		var data []byte
		if data, storiesErr = os.ReadFile(storiesGold); storiesErr != nil {
			return
		}
		var g struct{ Cases []goldenCase }
		if storiesErr = json.Unmarshal(data, &g); storiesErr != nil {
			return
		}
		storiesG = g.Cases
		storiesV, storiesErr = loadByteVocab(storiesTok)
	})
	if storiesErr != nil {
		t.Fatal(storiesErr)
	}
	return storiesM, storiesG, storiesV
}

func goldenByName(t testing.TB, name string) goldenCase {
	t.Helper()
	_, g, _ := stories(t)
	for _, c := range g {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no golden case %q", name)
	return goldenCase{}
}

// byteVocab is a minimal llama2.c tokenizer.bin decoder used as the test
// Tokenizer: pieces <0xNN> are single bytes, ids 0..2 are special, and a
// piece's leading space is dropped right after BOS (as run.c does).
type byteVocab struct {
	pieces [][]byte
}

func loadByteVocab(path string) (*byteVocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v := &byteVocab{}
	off := 4
	for off < len(data) {
		n := int(binary.LittleEndian.Uint32(data[off+4:]))
		p := data[off+8 : off+8+n]
		off += 8 + n
		if s := string(p); len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
			if b, err := strconv.ParseUint(s[3:5], 16, 8); err == nil {
				p = []byte{byte(b)}
			}
		}
		v.pieces = append(v.pieces, p)
	}
	return v, nil
}

// NewTextStream implements Tokenizer.
func (v *byteVocab) NewTextStream(skipSpecial bool) TextStream {
	return &byteStream{v: v, skip: skipSpecial, prev: -1}
}

type byteStream struct {
	v    *byteVocab
	skip bool
	prev int
	buf  []byte
}

func (s *byteStream) Add(id int) string {
	prev := s.prev
	s.prev = id
	if s.skip && id < 3 {
		return ""
	}
	p := s.v.pieces[id]
	if prev == 1 && len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	s.buf = append(s.buf, p...)
	return s.take(false)
}

func (s *byteStream) Flush() string { return s.take(true) }

// take returns the buffered bytes up to an incomplete trailing UTF-8
// sequence (everything if all), invalid bytes replaced by U+FFFD.
func (s *byteStream) take(all bool) string {
	cut := len(s.buf)
	if !all {
		cut = completeUTF8(s.buf)
	}
	out := strings.ToValidUTF8(string(s.buf[:cut]), "\uFFFD")
	s.buf = append(s.buf[:0], s.buf[cut:]...)
	return out
}

// completeUTF8 is the length of b without a trailing sequence that is the
// valid beginning of a longer character.
func completeUTF8(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-k:]) && c >= 0xC2 && c <= 0xF4 {
				return len(b) - k
			}
			break
		}
	}
	return len(b)
}

// scriptTok is a Tokenizer whose stream ignores the ids and returns, for
// the i-th generated token, chunk i of its script passed through UTF-8
// reassembly (nothing once the script is exhausted). The first Add is the
// priming call with the last prompt token and yields nothing.
type scriptTok struct{ chunks []string }

func (t scriptTok) NewTextStream(bool) TextStream { return &scriptStream{chunks: t.chunks} }

type scriptStream struct {
	chunks []string
	primed bool
	i      int
	buf    []byte
}

func (s *scriptStream) Add(int) string {
	if !s.primed {
		s.primed = true
		return ""
	}
	if s.i < len(s.chunks) {
		s.buf = append(s.buf, s.chunks[s.i]...)
		s.i++
	}
	cut := completeUTF8(s.buf)
	out := strings.ToValidUTF8(string(s.buf[:cut]), "\uFFFD")
	s.buf = append(s.buf[:0], s.buf[cut:]...)
	return out
}

func (s *scriptStream) Flush() string {
	out := strings.ToValidUTF8(string(s.buf), "\uFFFD")
	s.buf = s.buf[:0]
	return out
}

// recorder collects the pieces passed to onText.
type recorder struct{ pieces []string }

func (r *recorder) onText(s string) error {
	r.pieces = append(r.pieces, s)
	return nil
}

func (r *recorder) joined() string { return strings.Join(r.pieces, "") }

// softmax64 is a reference softmax.
func softmax64(l []float32) []float64 {
	hi := math.Inf(-1)
	for _, x := range l {
		hi = max(hi, float64(x))
	}
	p := make([]float64, len(l))
	sum := 0.0
	for i, x := range l {
		p[i] = math.Exp(float64(x) - hi)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// runC is the option set that reproduces llama2.c run.c's greedy loop.
func runC(n int) Options {
	return Options{MaxTokens: n, IgnoreEOS: true, StopTokens: []int{1}}
}
