package voices

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// scripture holds what KJV and WEB share: for each chapter, each verse's
// weight (the longer rendering, in words) and both renderings' text.
type scripture struct {
	weights map[string]map[int]int
	texts   map[string]map[int][]string
}

func verseWeights(kjv, web []*document) *scripture {
	s := &scripture{weights: map[string]map[int]int{}, texts: map[string]map[int][]string{}}
	for _, docs := range [][]*document{kjv, web} {
		for _, d := range docs {
			w := s.weights[d.id]
			t := s.texts[d.id]
			if w == nil {
				w = map[int]int{}
				t = map[int][]string{}
				s.weights[d.id], s.texts[d.id] = w, t
			}
			for _, b := range d.blocks {
				n, _ := strconv.Atoi(b.ref)
				w[n] = max(w[n], words(b.text))
				t[n] = append(t[n], b.text)
			}
		}
	}
	return s
}

// groups cuts a chapter into verse ranges of at most maxW (weighted) words.
func (s *scripture) groups(chapter string, maxW int) [][2]int {
	w := s.weights[chapter]
	vs := make([]int, 0, len(w))
	for v := range w {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	var out [][2]int
	n := 0
	for _, v := range vs {
		if n > 0 && n+w[v] > maxW {
			n = 0
		}
		if n == 0 {
			out = append(out, [2]int{v, v})
		}
		out[len(out)-1][1] = v
		n += w[v]
	}
	return out
}

func pick(seed int64, key string, templates []string) string {
	return templates[hash64(seed, "prompt", key)%uint64(len(templates))]
}

var (
	scriptureT = []string{"Read me %[1]s, on %[2]s.", "What does %[1]s say about %[2]s?", "%[1]s: %[2]s."}
	sermonT    = []string{"Expound Psalm %[1]s on %[2]s.", "Preach from Psalm %[1]s about %[2]s.", "What does Psalm %[1]s teach about %[2]s?"}
	nationT    = []string{"Speak to the nation about %s.", "Report to Congress on %s.", "Tell the American people about %s."}
	defineT    = []string{"What does %s mean?", "Define %s.", "What is the meaning of %s?"}
	moreT      = "Tell me more about %s."
)

// makePassages cuts d into passages and gives each its key and prompt.
func makePassages(d *document, cfg Config, sc *scripture, all map[string][]*document) {
	d.passage = nil
	add := func(num int, key, prompt, text string) {
		text = strings.TrimSpace(text)
		if text == "" {
			return
		}
		d.passage = append(d.passage, passage{num: num, key: key, prompt: prompt, text: text})
	}
	switch {
	case d.voice == "kjv" || d.voice == "web":
		byVerse := map[int]string{}
		for _, b := range d.blocks {
			n, _ := strconv.Atoi(b.ref)
			byVerse[n] = b.text
		}
		book, chap := d.extra["book"], d.extra["chapter"]
		for _, g := range sc.groups(d.id, cfg.MaxWords) {
			var parts, both []string
			for v := g[0]; v <= g[1]; v++ {
				if t, ok := byVerse[v]; ok {
					parts = append(parts, t)
				}
				both = append(both, sc.texts[d.id][v]...)
			}
			ref := fmt.Sprintf("%s %s:%d", refBook(book), chap, g[0])
			if g[1] != g[0] {
				ref += fmt.Sprintf("-%d", g[1])
			}
			topics := andList(topicWords(3, both...))
			add(g[0], ref, fmt.Sprintf(pick(cfg.Seed, ref, scriptureT), ref, topics), strings.Join(parts, " "))
		}
	case definers[d.voice]:
		sep := "\n\n"
		if d.voice == "wordnet" {
			sep = "\n"
		}
		for i, t := range cut(texts(d.blocks), cfg.MaxWords, sep) {
			prompt := fmt.Sprintf(pick(cfg.Seed, d.key, defineT), d.head)
			if i > 0 {
				prompt = fmt.Sprintf(moreT, d.head)
			}
			add(i, d.key, prompt, t)
		}
	case d.voice == "spurgeon":
		for i, t := range cut(texts(d.blocks), cfg.MaxWords, "\n\n") {
			add(i, "", fmt.Sprintf(pick(cfg.Seed, d.id+"#"+strconv.Itoa(i), sermonT), d.extra["psalm"], andList(topicWords(3, t))), t)
		}
	case d.voice == "sotu":
		for i, t := range cut(texts(d.blocks), cfg.MaxWords, "\n\n") {
			add(i, "", fmt.Sprintf(pick(cfg.Seed, d.id+"#"+strconv.Itoa(i), nationT), andList(topicWords(3, t))), t)
		}
	case d.voice == "wesnoth":
		n := 0
		for i := 0; i < len(d.blocks); {
			j := i
			var run []string
			for j < len(d.blocks) && d.blocks[j].speaker == d.blocks[i].speaker {
				run = append(run, d.blocks[j].text)
				j++
			}
			sp := d.blocks[i].speaker
			prompt := fmt.Sprintf("In \"%s\" (%s), speak as %s.", d.extra["scenario"], d.extra["campaign"], sp)
			if sp == "narrator" {
				prompt = fmt.Sprintf("In \"%s\" (%s), narrate.", d.extra["scenario"], d.extra["campaign"])
			}
			for _, t := range cut(run, cfg.MaxWords, "\n\n") {
				add(n, "", prompt, t)
				n++
			}
			i = j
		}
	}
}

func texts(bs []block) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.text
	}
	return out
}
