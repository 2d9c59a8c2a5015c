package model

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCopyPrefix: a cache seeded with the first n positions of another
// continues that sequence exactly as the source truncated to n does, and
// within float rounding as running the n tokens from scratch does; bad
// arguments are errors that leave the destination unchanged.
func TestCopyPrefix(t *testing.T) {
	stories, _ := loadStories(t)
	other := loadTiny(t, "mistral")
	const srcLen = 12
	tests := []struct {
		name    string
		m       *Model
		window  int
		n       int // positions copied
		dstMax  int // the destination's capacity (0: 64)
		dstHeld int // positions the destination holds before the copy
		rest    int // tokens run after the copy
		err     string
	}{
		{"whole source", stories, 0, srcLen, 0, 0, 3, ""},
		{"part of the source", stories, 0, 7, 0, 0, 4, ""},
		{"one position", stories, 0, 1, 0, 0, 5, ""},
		{"nothing", stories, 0, 0, 0, 0, 3, ""},
		{"over older contents", stories, 0, 5, 0, 20, 2, ""},
		{"into a small cache", stories, 0, 9, 10, 0, 1, ""},
		{"sliding window", stories, 4, 10, 0, 0, 3, ""},
		{"another architecture", other, 0, 8, 0, 3, 2, ""},
		{"beyond the source", stories, 0, srcLen + 1, 0, 2, 1, "source holds"},
		{"negative", stories, 0, -1, 0, 2, 1, "source holds"},
		{"beyond the destination", stories, 0, 9, 8, 2, 1, "exceed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			m.Config.SlidingWindow = tc.window
			defer func() { m.Config.SlidingWindow = 0 }()
			rng := rand.New(rand.NewPCG(uint64(tc.n+1), 3))
			toks := randTokens(rng, srcLen, m.Config.Vocab)
			rest := randTokens(rng, tc.rest, m.Config.Vocab)
			src := m.NewCache(64)
			if _, err := m.Forward(src, toks, false); err != nil {
				t.Fatal(err)
			}
			dstMax := tc.dstMax
			if dstMax == 0 {
				dstMax = 64
			}
			dst := m.NewCache(dstMax)
			if tc.dstHeld > 0 {
				if _, err := m.Forward(dst, randTokens(rng, tc.dstHeld, m.Config.Vocab), false); err != nil {
					t.Fatal(err)
				}
			}
			before := cloneCache(dst)
			err := dst.CopyPrefix(src, tc.n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if dst.Len() != before.Len() || !bytes.Equal(dst.k[0], before.k[0]) {
					t.Error("a failed copy changed the destination")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if dst.Len() != tc.n || src.Len() != srcLen {
				t.Fatalf("after the copy: %d and %d positions", dst.Len(), src.Len())
			}
			if tc.rest == 0 {
				return
			}
			if want := int64(2*m.Config.Layers*tc.n*m.Config.KVDim()) * 4; tc.dstHeld == 0 && tc.dstMax == 0 && dst.Bytes() != want {
				t.Errorf("a fresh cache holds %d bytes after the copy, want exactly %d", dst.Bytes(), want)
			}
			got, err := m.Forward(dst, rest, true)
			if err != nil {
				t.Fatal(err)
			}
			// The source truncated to n computes exactly the same.
			trunc := cloneCache(src)
			trunc.Truncate(tc.n)
			same, err := m.Forward(trunc, rest, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got, same); d != 0 {
				t.Errorf("differs from the truncated source by %g", d)
			}
			// Running the prefix from scratch agrees up to rounding (the
			// prefix ran in another chunk size).
			fresh := m.NewCache(64)
			if tc.n > 0 {
				if _, err := m.Forward(fresh, toks[:tc.n], false); err != nil {
					t.Fatal(err)
				}
			}
			want, err := m.Forward(fresh, rest, true)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got, want); d > 1e-5 {
				t.Errorf("differs from running the prefix afresh by %g", d)
			}
			// The source is untouched and still continues.
			if _, err := m.Forward(src, rest[:1], false); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("models of other shapes", func(t *testing.T) {
		src := stories.NewCache(16)
		if _, err := stories.Forward(src, []int{1, 2, 3}, false); err != nil {
			t.Fatal(err)
		}
		dst := other.NewCache(16)
		if err := dst.CopyPrefix(src, 2); err == nil || !strings.Contains(err.Error(), "different models") {
			t.Errorf("copy across models: %v", err)
		}
		if err := dst.CopyPrefix(nil, 0); err == nil {
			t.Error("copy from nil accepted")
		}
	})
	t.Run("onto itself", func(t *testing.T) {
		c := stories.NewCache(16)
		if _, err := stories.Forward(c, []int{1, 2, 3, 4}, false); err != nil {
			t.Fatal(err)
		}
		if err := c.CopyPrefix(c, 2); err != nil || c.Len() != 2 {
			t.Errorf("self copy: %v, %d positions", err, c.Len())
		}
	})
}
