package style

import (
	"sort"
	"strings"
)

// Dimensions are the 14 named dimensions of the syntactic profile, in the
// order of every syntactic vector. How each is computed from the rule
// counts is in the package documentation.
var Dimensions = []string{
	"referentiality", "interjections", "declarativity", "clausal embedding", "subordination",
	"parallelism", "coordination", "modifier density", "nominal complexity", "prepositions",
	"topic fronting", "fragments/ellipsis", "compression", "quantification",
}

// node is a phrase (Kids set) or a part-of-speech node (Kids nil).
type node struct {
	label string
	word  string // POS nodes: the token
	kids  []*node
}

func (n *node) phrase() bool { return n.kids != nil }

// quantifiers are the words whose DT, PDT or JJ tag becomes QT.
var quantifiers = map[string]bool{"all": true, "every": true, "each": true, "some": true, "any": true, "no": true,
	"both": true, "either": true, "neither": true, "many": true, "much": true, "few": true, "several": true}

// subordinators are the IN words that can open an adverbial (or, for
// that and whether, a complement) clause.
var subordinators = map[string]bool{"because": true, "although": true, "though": true, "if": true, "unless": true,
	"until": true, "till": true, "while": true, "whilst": true, "whereas": true, "since": true, "lest": true,
	"whether": true, "that": true, "once": true, "as": true, "after": true, "before": true, "except": true}

var punct = map[string]bool{".": true, "?": true, "!": true, ",": true, ":": true, "``": true, "''": true,
	"(": true, ")": true, "-LRB-": true, "-RRB-": true, "#": true, "$": true, "-": true, "SYM": true, "-NONE-": true}

func isNoun(t string) bool { return t == "NN" || t == "NNS" || t == "NNP" || t == "NNPS" }
func isAdj(t string) bool  { return t == "JJ" || t == "JJR" || t == "JJS" }
func isAdv(t string) bool  { return t == "RB" || t == "RBR" || t == "RBS" }
func isVerb(t string) bool { return len(t) >= 2 && t[:2] == "VB" }

// Rules counts grammar rules "LHS → C1 C2 …" whose children are phrase or
// part-of-speech nodes.
type Rules map[string]int

// Add parses tagged sentences with the chunk and clause rules and counts
// their grammar rules.
func (r Rules) Add(sents [][]Token) {
	for _, s := range sents {
		if len(s) == 0 {
			continue
		}
		root := parseSentence(s)
		r.count(root)
	}
}

func (r Rules) count(n *node) {
	if !n.phrase() {
		return
	}
	var b strings.Builder
	b.WriteString(n.label)
	b.WriteString(" →")
	for _, k := range n.kids {
		b.WriteByte(' ')
		b.WriteString(k.label)
		r.count(k)
	}
	r[b.String()]++
}

// Merge adds o's counts to r.
func (r Rules) Merge(o Rules) {
	for k, v := range o {
		r[k] += v
	}
}

// split returns a rule's left-hand side and children.
func splitRule(rule string) (string, []string) {
	lhs, rhs, _ := strings.Cut(rule, " →")
	return lhs, strings.Fields(rhs)
}

// Normalized returns P(rule | LHS): each rule's count over the count of its
// left-hand side.
func (r Rules) Normalized() map[string]float64 {
	lhs := map[string]int{}
	for k, v := range r {
		l, _ := splitRule(k)
		lhs[l] += v
	}
	out := make(map[string]float64, len(r))
	for k, v := range r {
		l, _ := splitRule(k)
		out[k] = float64(v) / float64(lhs[l])
	}
	return out
}

// Vector maps the rule counts onto the 14 dimensions (see the package
// documentation). It is a pure function of the counts, summed in a fixed
// order, so the same text gives the same bits.
func (r Rules) Vector() []float64 {
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var nRoot, nS, nNP, nPP, nMod float64
	var ref, intj, decl, emb, sub, par, coord, mods, npLen, front, frag, comp, quant float64
	for _, k := range keys {
		c := float64(r[k])
		lhs, kids := splitRule(k)
		switch lhs {
		case "ROOT":
			nRoot += c
		case "S":
			nS += c
		case "NP":
			nNP += c
		case "PP":
			nPP += c
		}
		nc := 0
		for _, x := range kids {
			if x == "CC" {
				nc++
			}
		}
		coord += c * float64(nc)
		if nc > 0 && parallel(lhs, kids) {
			par += c
		}
		switch lhs {
		case "NP":
			if len(kids) == 1 && (kids[0] == "PRP" || kids[0] == "EX" || kids[0] == "DT" || kids[0] == "WP") {
				ref += c
			}
			npLen += c * float64(len(kids))
			for _, x := range kids {
				if x == "CD" || x == "QT" || x == "PDT" {
					quant += c
					break
				}
			}
		case "SBAR":
			switch kids[0] {
			case "IN":
				sub += c
			default:
				emb += c
			}
		}
		if lhs == "NP" || lhs == "VP" || lhs == "ADJP" || lhs == "ADVP" {
			nMod += c
			for _, x := range kids {
				if isAdj(x) || isAdv(x) {
					mods += c
				}
			}
		}
		if lhs == "ROOT" || lhs == "S" {
			content := 0
			for _, x := range kids {
				if x == "INTJ" {
					intj += c
				}
				if !punct[x] {
					content++
				}
			}
			if content <= 3 {
				comp += c
			}
		}
		if lhs == "ROOT" {
			hasVP, hasS, npFirst := false, false, false
			for _, x := range kids {
				switch x {
				case "VP":
					hasVP = true
				case "S":
					hasS = true
				case "NP":
					if !hasVP {
						npFirst = true
					}
				}
			}
			if !hasVP && !hasS {
				frag += c
			}
			if kids[len(kids)-1] == "." && (hasS || hasVP && npFirst) {
				decl += c
			}
			i := 0
			for i < len(kids) && (kids[i] == "CC" || kids[i] == "INTJ" || punct[kids[i]]) {
				i++
			}
			if i < len(kids) {
				switch kids[i] {
				case "PP", "ADVP", "SBAR", "ADJP":
					front += c
				case "NP":
					if i+1 < len(kids) && kids[i+1] == "," {
						front += c
					}
				}
			}
		}
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return []float64{
		div(ref, nNP), div(intj, nRoot), div(decl, nRoot), div(emb, nRoot), div(sub, nRoot),
		div(par, nRoot), div(coord, nRoot), div(mods, nMod), div(npLen, nNP), div(nPP, nRoot),
		div(front, nRoot), div(frag, nRoot), div(comp, nRoot+nS), div(quant, nNP),
	}
}

// parallel reports whether a rule with a CC child coordinates like
// phrases: every phrase child has the label of the LHS (S for ROOT), and
// there are at least two.
func parallel(lhs string, kids []string) bool {
	want := lhs
	if lhs == "ROOT" {
		want = "S"
	}
	n := 0
	for _, x := range kids {
		switch {
		case x == "CC" || punct[x]:
		case x == want:
			n++
		default:
			return false
		}
	}
	return n >= 2
}

// parseSentence builds the shallow tree of one sentence: chunks, then
// coordinated chunks, prepositional phrases, subordinate clauses and
// coordinated clauses (the rules are in the package documentation).
func parseSentence(toks []Token) *node {
	leaves := make([]*node, len(toks))
	for i, t := range toks {
		tag := t.Tag
		w := strings.ToLower(t.Text)
		if (tag == "DT" || tag == "PDT" || tag == "JJ") && quantifiers[w] {
			tag = "QT"
		}
		leaves[i] = &node{label: tag, word: w}
	}
	nodes := chunk(leaves)
	nodes = coordinate(nodes, map[string]bool{"NP": true, "ADJP": true, "ADVP": true})
	nodes = prepositions(nodes)
	nodes = coordinate(nodes, map[string]bool{"PP": true, "VP": true})
	nodes = clauses(nodes)
	return &node{label: "ROOT", kids: coordinateClauses(nodes)}
}

// chunk groups part-of-speech nodes into NP, VP, ADJP, ADVP and INTJ.
func chunk(ls []*node) []*node {
	var out []*node
	tag := func(i int) string {
		if i < len(ls) {
			return ls[i].label
		}
		return ""
	}
	for i := 0; i < len(ls); {
		t := tag(i)
		switch {
		case t == "UH":
			j := i
			for tag(j) == "UH" {
				j++
			}
			out = append(out, &node{label: "INTJ", kids: ls[i:j]})
			i = j
			continue
		case t == "PRP" || t == "EX":
			out = append(out, &node{label: "NP", kids: ls[i : i+1]})
			i++
			continue
		}
		if j, ok := nounPhrase(ls, i); ok {
			out = append(out, &node{label: "NP", kids: ls[i:j]})
			i = j
			continue
		}
		if j, ok := verbPhrase(ls, i); ok {
			out = append(out, &node{label: "VP", kids: ls[i:j]})
			i = j
			continue
		}
		if isAdv(t) || isAdj(t) {
			j := i
			for isAdv(tag(j)) {
				j++
			}
			if isAdj(tag(j)) {
				for isAdj(tag(j)) {
					j++
				}
				out = append(out, &node{label: "ADJP", kids: ls[i:j]})
			} else {
				out = append(out, &node{label: "ADVP", kids: ls[i:j]})
			}
			i = j
			continue
		}
		out = append(out, ls[i])
		i++
	}
	return out
}

// nounPhrase matches [PDT|QT] [DT|PRP$|WP$|QT] (JJ*|CD|QT)* NN* (POS (JJ*)* NN*)*
// with at least one noun, or a determiner, number or quantifier with
// optional adjectives and no noun. It returns the end.
func nounPhrase(ls []*node, i int) (int, bool) {
	tag := func(k int) string {
		if k < len(ls) {
			return ls[k].label
		}
		return ""
	}
	j := i
	det := false
	if t := tag(j); t == "PDT" || t == "QT" {
		j++
		det = true
	}
	if t := tag(j); t == "DT" || t == "PRP$" || t == "WP$" || t == "QT" {
		j++
		det = true
	}
	nouns := 0
	for {
		for t := tag(j); isAdj(t) || t == "CD" || t == "QT"; t = tag(j) {
			if t == "CD" || t == "QT" {
				det = true
			}
			j++
		}
		k := j
		for isNoun(tag(k)) {
			k++
		}
		nouns += k - j
		j = k
		if k > i && isNoun(ls[k-1].label) && tag(k) == "POS" && (isNoun(tag(k+1)) || isAdj(tag(k+1))) {
			j = k + 1
			continue
		}
		break
	}
	if nouns > 0 || det && j > i {
		return j, true
	}
	return i, false
}

// verbPhrase matches (RB* (MD|VB*|TO VB))+ RP?: auxiliaries, adverbs
// between them and the verbs, ending in a verb or modal.
func verbPhrase(ls []*node, i int) (int, bool) {
	tag := func(k int) string {
		if k < len(ls) {
			return ls[k].label
		}
		return ""
	}
	j, end := i, i
	for {
		k := j
		for isAdv(tag(k)) {
			k++
		}
		t := tag(k)
		switch {
		case t == "MD" || isVerb(t):
			j, end = k+1, k+1
			continue
		case t == "TO" && isVerb(tag(k+1)) && end > i:
			j, end = k+2, k+2
			continue
		}
		break
	}
	if end == i {
		return i, false
	}
	if tag(end) == "RP" {
		end++
	}
	return end, true
}

// coordinate merges X CC X and X , X … CC X into one X for the labels
// given.
func coordinate(ns []*node, labels map[string]bool) []*node {
	var out []*node
	for i := 0; i < len(ns); {
		n := ns[i]
		if !n.phrase() || !labels[n.label] {
			out = append(out, n)
			i++
			continue
		}
		// Extend over (, X)* [,] CC X.
		j, last := i+1, i+1
		kids := []*node{n}
		for j < len(ns) {
			if ns[j].label == "," && j+1 < len(ns) && ns[j+1].label == n.label && ns[j+1].phrase() {
				kids = append(kids, ns[j], ns[j+1])
				j += 2
				continue
			}
			k := j
			if ns[k].label == "," && k+1 < len(ns) && ns[k+1].label == "CC" {
				k++
			}
			if ns[k].label == "CC" && k+1 < len(ns) && ns[k+1].label == n.label && ns[k+1].phrase() {
				kids = append(kids, ns[j:k+2]...)
				j = k + 2
				last = j
				continue
			}
			break
		}
		if last == i+1 {
			out = append(out, n)
			i++
			continue
		}
		out = append(out, &node{label: n.label, kids: kids[:len(kids)-(j-last)]})
		i = last
	}
	return out
}

// prepositions makes IN NP and TO NP into PP, unless the IN is a
// subordinator followed by a clause (NP VP).
func prepositions(ns []*node) []*node {
	var out []*node
	for i := 0; i < len(ns); i++ {
		n := ns[i]
		if (n.label == "IN" || n.label == "TO") && !n.phrase() && i+1 < len(ns) && ns[i+1].label == "NP" {
			if n.label == "IN" && subordinators[n.word] && i+2 < len(ns) && ns[i+2].label == "VP" {
				out = append(out, n)
				continue
			}
			out = append(out, &node{label: "PP", kids: []*node{n, ns[i+1]}})
			i++
			continue
		}
		out = append(out, n)
	}
	return out
}

// clauseEnd reports whether a node ends a subordinate clause.
func clauseEnd(n *node) bool {
	switch n.label {
	case ",", ":", ".", "?", "!", "CC":
		return !n.phrase()
	}
	return false
}

// clauses makes SBAR → head S from a complementizer (WDT, WP, WP$, WRB;
// that or whether as THAT) or a subordinating IN followed by a clause up to
// the next , : CC or sentence end. A WH clause needs a VP; an IN clause
// needs an NP before its VP. A WH word opening a question is left alone.
func clauses(ns []*node) []*node {
	question := len(ns) > 0 && ns[len(ns)-1].label == "?"
	first := 0
	for first < len(ns) && (ns[first].label == "CC" || ns[first].label == "INTJ") {
		first++
	}
	var out []*node
	for i := 0; i < len(ns); i++ {
		n := ns[i]
		wh := !n.phrase() && (n.label == "WDT" || n.label == "WP" || n.label == "WP$" || n.label == "WRB")
		in := !n.phrase() && n.label == "IN" && subordinators[n.word]
		if !(wh || in) || wh && question && i == first {
			out = append(out, n)
			continue
		}
		j := i + 1
		for j < len(ns) && !clauseEnd(ns[j]) {
			j++
		}
		body := ns[i+1 : j]
		np, vp := -1, -1
		for k, b := range body {
			if b.label == "NP" && np < 0 {
				np = k
			}
			if b.label == "VP" && vp < 0 {
				vp = k
			}
		}
		if vp < 0 || in && (np < 0 || np > vp) {
			out = append(out, n)
			continue
		}
		head := n
		if n.word == "that" || n.word == "whether" {
			head = &node{label: "THAT", word: n.word}
		}
		out = append(out, &node{label: "SBAR", kids: []*node{head, {label: "S", kids: body}}})
		i = j - 1
	}
	return out
}

// coordinateClauses splits the sentence at CC (optionally after a comma
// or colon) where both sides are clauses (the left has a VP, the right an
// NP before a VP): ROOT → S CC S … with the final punctuation kept.
func coordinateClauses(ns []*node) []*node {
	end := len(ns)
	for end > 0 && punct[ns[end-1].label] && !ns[end-1].phrase() {
		end--
	}
	body, tail := ns[:end], ns[end:]
	hasVP := func(xs []*node) bool {
		for _, x := range xs {
			if x.label == "VP" {
				return true
			}
		}
		return false
	}
	clause := func(xs []*node) bool {
		for _, x := range xs {
			if x.label == "VP" {
				return false
			}
			if x.label == "NP" {
				return hasVP(xs)
			}
		}
		return false
	}
	var parts [][]*node
	var seps [][]*node
	start := 0
	for k := 0; k < len(body); k++ {
		if body[k].label != "CC" || body[k].phrase() || k == 0 {
			continue
		}
		l := k
		if l > start && (body[l-1].label == "," || body[l-1].label == ":") {
			l--
		}
		next := len(body)
		for m := k + 1; m < len(body); m++ {
			if body[m].label == "CC" && !body[m].phrase() {
				next = m
				break
			}
		}
		if l > start && hasVP(body[start:l]) && clause(body[k+1:next]) {
			parts = append(parts, body[start:l])
			seps = append(seps, body[l:k+1])
			start = k + 1
		}
	}
	if len(parts) == 0 {
		return ns
	}
	parts = append(parts, body[start:])
	var out []*node
	for i, p := range parts {
		if i > 0 {
			out = append(out, seps[i-1]...)
		}
		out = append(out, &node{label: "S", kids: p})
	}
	return append(out, tail...)
}
