package tokenizer

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Fast scanners for the two large parts of tokenizer.json: the vocab object
// {"token": id, ...} and the merges list ["a b", ...] or [["a", "b"], ...]. They
// accept only a simple subset of JSON and report ok=false for anything else, in which
// case the caller falls back to encoding/json (which then also gives the error message).

type jscan struct {
	b []byte
	i int
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jscan) eat(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

func (s *jscan) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a JSON string.
func (s *jscan) str() (string, bool) {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i
	esc := false
	j := s.i + 1
	for ; j < len(s.b); j++ {
		c := s.b[j]
		if c == '\\' {
			esc = true
			j++
			continue
		}
		if c == '"' {
			break
		}
		if c < 0x20 {
			return "", false
		}
	}
	if j >= len(s.b) {
		return "", false
	}
	s.i = j + 1
	if !esc && utf8.Valid(s.b[start+1:j]) {
		return string(s.b[start+1 : j]), true
	}
	var out string
	if err := json.Unmarshal(s.b[start:j+1], &out); err != nil {
		return "", false
	}
	return out, true
}

// integer reads a non-negative or negative JSON integer.
func (s *jscan) integer() (int, bool) {
	s.ws()
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(string(s.b[s.i:j]))
	if err != nil {
		return 0, false
	}
	s.i = j
	return n, true
}

func (s *jscan) end() bool {
	s.ws()
	return s.i == len(s.b)
}

// fastVocab parses {"token": id, ...}.
func fastVocab(b []byte) (map[string]int, bool) {
	s := &jscan{b: b}
	if !s.eat('{') {
		return nil, false
	}
	m := make(map[string]int, len(b)/16)
	if s.eat('}') {
		return m, s.end()
	}
	for {
		k, ok := s.str()
		if !ok || !s.eat(':') {
			return nil, false
		}
		v, ok := s.integer()
		if !ok {
			return nil, false
		}
		m[k] = v // as encoding/json: a later duplicate key wins
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return m, s.end()
		}
		return nil, false
	}
}

// fastMerges parses ["a b", ...] (pairs=false: the strings are returned whole) or
// [["a", "b"], ...].
func fastMerges(b []byte) (list []string, pairs bool, ok bool) {
	s := &jscan{b: b}
	if !s.eat('[') {
		return nil, false, false
	}
	if s.eat(']') {
		return nil, false, s.end()
	}
	pairs = s.peek() == '['
	for {
		if pairs {
			if !s.eat('[') {
				return nil, false, false
			}
			a, ok1 := s.str()
			if !ok1 || !s.eat(',') {
				return nil, false, false
			}
			c, ok2 := s.str()
			if !ok2 || !s.eat(']') {
				return nil, false, false
			}
			list = append(list, a, c)
		} else {
			a, ok1 := s.str()
			if !ok1 {
				return nil, false, false
			}
			list = append(list, a)
		}
		if s.eat(',') {
			continue
		}
		if s.eat(']') {
			return list, pairs, s.end()
		}
		return nil, false, false
	}
}
