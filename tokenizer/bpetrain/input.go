package bpetrain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/masque-ai/masque/chattemplate"
)

// InputFile is one file of the training data.
type InputFile struct {
	Path  string
	JSONL bool // rows of JSON (else plain text)
	Size  int64
}

// ResolveInputs expands the --data paths into files: a folder stands for every
// */train.jsonl in it (and a train.jsonl at its top), the train split of a corpus
// folder such as `masque corpus voices` writes (valid and test files are never
// read); a file is JSONL when its name ends in .jsonl, plain text otherwise. A file
// named twice is read once.
func ResolveInputs(paths []string) ([]InputFile, error) {
	if len(paths) == 0 {
		return nil, errors.New("bpetrain: no training data given")
	}
	var out []InputFile
	seen := map[string]bool{}
	add := func(p string, st os.FileInfo) {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = p
		}
		if seen[abs] {
			return
		}
		seen[abs] = true
		out = append(out, InputFile{Path: p, JSONL: strings.HasSuffix(strings.ToLower(p), ".jsonl"), Size: st.Size()})
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("bpetrain: %w", err)
		}
		if !st.IsDir() {
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("bpetrain: %s: not a regular file", p)
			}
			add(p, st)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*", "train.jsonl"))
		if err != nil {
			return nil, fmt.Errorf("bpetrain: %s: %w", p, err)
		}
		if top := filepath.Join(p, "train.jsonl"); fileExists(top) {
			matches = append(matches, top)
		}
		sort.Strings(matches)
		n := 0
		for _, m := range matches {
			st, err := os.Stat(m)
			if err != nil {
				return nil, fmt.Errorf("bpetrain: %w", err)
			}
			if st.Mode().IsRegular() {
				add(m, st)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("bpetrain: %s: a folder must hold */train.jsonl files (a corpus folder); found none", p)
		}
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// jsonlRow is what the trainer reads from a JSONL row: a "text", the contents of
// "messages", or both.
type jsonlRow struct {
	Text     *string `json:"text"`
	Messages []struct {
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// readJSONL calls fn with the texts of each row of a JSONL file: the row's "text" and
// the text of each message content ("messages", OpenAI style), a message whose
// content equals the row's text or an earlier message of the row counted once (the
// voices corpus repeats the passage as the assistant turn). Blank lines are skipped;
// a malformed row or one with neither field is an error naming the file and line.
// read reports the bytes consumed.
func readJSONL(ctx context.Context, r io.Reader, name string, fn func(string), read func(int)) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var texts []string
	for line := 1; ; line++ {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long row: collect the rest of it.
			buf := append([]byte(nil), b...)
			for errors.Is(err, bufio.ErrBufferFull) {
				b, err = br.ReadSlice('\n')
				buf = append(buf, b...)
			}
			b = buf
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("bpetrain: %s:%d: %w", name, line, err)
		}
		read(len(b))
		if line&1023 == 0 {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
		}
		if t := bytes.TrimSpace(b); len(t) > 0 {
			var row jsonlRow
			if jerr := json.Unmarshal(t, &row); jerr != nil {
				return fmt.Errorf("bpetrain: %s:%d: bad JSON: %v", name, line, jerr)
			}
			if row.Text == nil && row.Messages == nil {
				return fmt.Errorf("bpetrain: %s:%d: the row has neither \"text\" nor \"messages\"", name, line)
			}
			texts = texts[:0]
			if row.Text != nil {
				texts = append(texts, *row.Text)
			}
			for i, m := range row.Messages {
				parts, perr := chattemplate.ParseContent(m.Content)
				if perr != nil {
					return fmt.Errorf("bpetrain: %s:%d: messages[%d]: %v", name, line, i, perr)
				}
				for _, p := range parts {
					if p.Type == "text" && p.Text != "" && !contains(texts, p.Text) {
						texts = append(texts, p.Text)
					}
				}
			}
			for _, s := range texts {
				fn(s)
			}
		}
		if err != nil { // io.EOF
			return nil
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// chunkSize is about how much plain text is pre-tokenized at a time.
const chunkSize = 1 << 20

// readText calls fn with a plain text file in chunks of about chunkSize bytes. A
// chunk ends at a line end between two characters that are not white space ("x\ny"):
// every pre-tokenizer regex here splits there alike at the end of a text and inside
// it, so the chunks give the pre-tokens of the whole file.
func readText(ctx context.Context, r io.Reader, name string, fn func(string), read func(int)) error {
	return readTextChunks(ctx, r, name, chunkSize, fn, read)
}

func readTextChunks(ctx context.Context, r io.Reader, name string, chunkSize int, fn func(string), read func(int)) error {
	br := bufio.NewReaderSize(r, 1<<16)
	var chunk []byte
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("bpetrain: %s: %w", name, err)
		}
		read(len(line))
		if len(chunk) >= chunkSize && len(line) > 0 && startsNonSpace(line) && endsCleanly(chunk) {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			fn(string(chunk))
			chunk = chunk[:0]
		}
		chunk = append(chunk, line...)
		if err != nil { // io.EOF
			break
		}
	}
	if len(chunk) > 0 {
		fn(string(chunk))
	}
	return nil
}

// endsCleanly reports whether b ends with one line end after a character that is not
// white space ("x\n"): a longer run of white space at the end ("  \n", "\r\n") splits
// differently at the end of a text under GPT-2's \s+(?!\S).
func endsCleanly(b []byte) bool {
	if len(b) < 2 || b[len(b)-1] != '\n' {
		return false
	}
	r, _ := utf8.DecodeLastRune(b[:len(b)-1])
	return !unicode.IsSpace(r)
}

func startsNonSpace(b []byte) bool {
	r, _ := utf8.DecodeRune(b)
	return !unicode.IsSpace(r)
}
