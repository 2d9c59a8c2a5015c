package chattemplate

import (
	"fmt"
	"strings"

	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// engineConfig is the Jinja configuration transformers uses for chat
// templates.
func engineConfig() *config.Config {
	c := config.New()
	c.TrimBlocks = true
	c.LeftStripBlocks = true
	c.KeepTrailingNewline = false
	c.AutoEscape = false
	c.StrictUndefined = false
	return c
}

// parseTemplate lexes and parses source with gonja, after rewriting
// conditional expressions (`a if c else b`) that gonja only supports at the
// top of an output tag, and returns an executable gonja template.
func parseTemplate(source string) (*exec.Template, error) {
	cfg := engineConfig()
	env := environment()
	// gonja's lexer also strips blanks before a tag that does not start its
	// line; lstrip_blocks is applied below instead, like Jinja2 does.
	lexCfg := cfg.Inherit()
	lexCfg.LeftStripBlocks = false
	stream := tokens.LexAll(source, lexCfg)
	var toks []*tokens.Token
	for {
		t := stream.Current()
		toks = append(toks, t)
		if stream.End() {
			break
		}
		stream.Next()
	}
	if err := checkNesting(toks); err != nil {
		return nil, err
	}
	input := normalizeSource(source)
	lstripBlocks(toks, input)
	keepRawNewline(toks, input)
	toks = rewriteConditionals(toks)

	loader, err := loaders.NewMemoryLoader(map[string]string{rootID: ""})
	if err != nil {
		return nil, err
	}
	p := parser.NewParser(rootID, tokens.NewStream(toks), cfg, loader, env.ControlStructures)
	root, err := p.Parse()
	if err != nil {
		return nil, err
	}
	// An empty gonja template provides the renderer plumbing; the parsed
	// tree is then installed as its root.
	tpl, err := exec.NewTemplate(rootID, cfg, loader, env)
	if err != nil {
		return nil, err
	}
	*tpl.Root() = *root
	return tpl, nil
}

// maxNesting bounds bracket nesting in expressions; gonja's parser slows
// down sharply on very deep nesting.
const maxNesting = 100

func checkNesting(toks []*tokens.Token) error {
	depth := 0
	for _, t := range toks {
		switch {
		case isOpen(t.Type):
			depth++
			if depth > maxNesting {
				return &parser.SyntaxError{Message: fmt.Sprintf("brackets nested more than %d deep", maxNesting), Raw: t.Val, Line: t.Line, Column: t.Col}
			}
		case isClose(t.Type):
			depth = max(depth-1, 0)
		case t.Type == tokens.VariableEnd || t.Type == tokens.BlockEnd:
			depth = 0
		}
	}
	return nil
}

// normalizeSource is the text gonja's lexer works on: newlines normalized
// and one trailing newline dropped (keep_trailing_newline=False).
func normalizeSource(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.TrimSuffix(s, "\n")
}

// lstripBlocks implements Jinja2's lstrip_blocks: blanks (spaces and tabs)
// between the start of a line and a block or comment tag are removed,
// unless the tag opens with a '+'.
func lstripBlocks(toks []*tokens.Token, input string) {
	for i, t := range toks {
		if i == 0 || (t.Type != tokens.BlockBegin && t.Type != tokens.CommentBegin) || strings.HasSuffix(t.Val, "+") {
			continue
		}
		p := t.Pos
		if p < 0 || p > len(input) {
			continue
		}
		ws := p
		for ws > 0 && (input[ws-1] == ' ' || input[ws-1] == '\t') {
			ws--
		}
		if ws == p || (ws > 0 && input[ws-1] != '\n') {
			continue
		}
		d := toks[i-1]
		if d.Type == tokens.Data && d.Pos+len(d.Val) == p && len(d.Val) >= p-ws {
			d.Val = d.Val[:len(d.Val)-(p-ws)]
		}
	}
}

// keepRawNewline undoes trim_blocks right after {% raw %}: Jinja2 keeps
// the raw text exactly, including its first newline.
func keepRawNewline(toks []*tokens.Token, input string) {
	for i := 3; i < len(toks); i++ {
		d := toks[i]
		if d.Type != tokens.Data || toks[i-1].Type != tokens.BlockEnd || !isName(toks[i-2], "raw") || toks[i-3].Type != tokens.BlockBegin {
			continue
		}
		end := toks[i-1]
		if strings.HasSuffix(end.Val, "+") {
			continue
		}
		if nl := end.Pos + len(end.Val); nl < len(input) && input[nl] == '\n' && d.Pos == nl+1 {
			d.Val = "\n" + d.Val
			d.Pos = nl
		}
	}
}

// rewriteConditionals replaces every conditional expression `A if C else B`
// (and `A if C`) inside an output or statement tag by the equivalent
// `(((C) and [A]) or [B])[0]`, which gonja parses anywhere and evaluates
// lazily like Python. Loop filters (`{% for x in xs if cond %}`) are left
// alone.
func rewriteConditionals(toks []*tokens.Token) []*tokens.Token {
	out := make([]*tokens.Token, 0, len(toks))
	for i := 0; i < len(toks); {
		t := toks[i]
		var end tokens.Type
		switch t.Type {
		case tokens.VariableBegin:
			end = tokens.VariableEnd
		case tokens.BlockBegin:
			end = tokens.BlockEnd
		default:
			out = append(out, t)
			i++
			continue
		}
		j := i + 1
		for j < len(toks) && toks[j].Type != end && toks[j].Type != tokens.EOF && toks[j].Type != tokens.Error {
			j++
		}
		body := toks[i+1 : j]
		out = append(out, t)
		if t.Type == tokens.BlockBegin && len(body) > 0 && body[0].Type == tokens.Name {
			out = append(out, body[0])
			out = append(out, rewriteRegion(body[1:], body[0].Val == "for")...)
		} else {
			out = append(out, rewriteRegion(body, false)...)
		}
		i = j
	}
	return out
}

func isOpen(t tokens.Type) bool {
	return t == tokens.LeftParenthesis || t == tokens.LeftBracket || t == tokens.LeftBrace
}

func isClose(t tokens.Type) bool {
	return t == tokens.RightParenthesis || t == tokens.RightBracket || t == tokens.RightBrace
}

func isName(t *tokens.Token, v string) bool { return t.Type == tokens.Name && t.Val == v }

// isSep reports whether t ends an operand of a conditional expression at
// its own nesting level.
func isSep(t *tokens.Token) bool {
	switch t.Type {
	case tokens.Comma, tokens.Colon, tokens.Assign:
		return true
	}
	return isName(t, "else") || isName(t, "if")
}

// rewriteRegion rewrites the conditional expressions of one tag's
// expression tokens. With skipTop, an `if` outside brackets is a loop filter.
func rewriteRegion(region []*tokens.Token, skipTop bool) []*tokens.Token {
	toks := append([]*tokens.Token(nil), region...)
	for guard := 0; guard < 10000; guard++ {
		k := lastConditionalIf(toks, skipTop)
		if k < 0 {
			break
		}
		// Left operand: back to a separator or an opening bracket.
		lo, nest := k, 0
		for lo > 0 {
			p := toks[lo-1]
			if isClose(p.Type) {
				nest++
			} else if isOpen(p.Type) {
				if nest == 0 {
					break
				}
				nest--
			} else if nest == 0 && isSep(p) {
				break
			}
			lo--
		}
		// Condition: up to else or a separator/closing bracket.
		c, nest := k+1, 0
		for c < len(toks) {
			p := toks[c]
			if isOpen(p.Type) {
				nest++
			} else if isClose(p.Type) {
				if nest == 0 {
					break
				}
				nest--
			} else if nest == 0 && isSep(p) {
				break
			}
			c++
		}
		hasElse := c < len(toks) && isName(toks[c], "else")
		hi := c
		if hasElse {
			hi, nest = c+1, 0
			for hi < len(toks) {
				p := toks[hi]
				if isOpen(p.Type) {
					nest++
				} else if isClose(p.Type) {
					if nest == 0 {
						break
					}
					nest--
				} else if nest == 0 && (p.Type == tokens.Comma || p.Type == tokens.Colon || p.Type == tokens.Assign || isName(p, "if")) {
					break
				}
				hi++
			}
		}
		a := toks[lo:k]
		cond := toks[k+1 : c]
		var b []*tokens.Token
		if hasElse {
			b = toks[c+1 : hi]
		}
		if len(a) == 0 || len(cond) == 0 || (hasElse && len(b) == 0) {
			// Malformed; leave the `if` as a name so the parser reports it.
			toks[k] = &tokens.Token{Type: tokens.Name, Val: "if ", Pos: toks[k].Pos, Line: toks[k].Line, Col: toks[k].Col}
			continue
		}
		at := toks[k]
		mk := func(typ tokens.Type, val string) *tokens.Token {
			return &tokens.Token{Type: typ, Val: val, Pos: at.Pos, Line: at.Line, Col: at.Col}
		}
		repl := []*tokens.Token{mk(tokens.LeftParenthesis, "("), mk(tokens.LeftParenthesis, "("), mk(tokens.LeftParenthesis, "(")}
		repl = append(repl, cond...)
		repl = append(repl, mk(tokens.RightParenthesis, ")"), mk(tokens.And, "and"), mk(tokens.LeftBracket, "["))
		repl = append(repl, a...)
		repl = append(repl, mk(tokens.RightBracket, "]"), mk(tokens.RightParenthesis, ")"), mk(tokens.Or, "or"), mk(tokens.LeftBracket, "["))
		if hasElse {
			repl = append(repl, b...)
		} else {
			repl = append(repl, mk(tokens.Name, "none"))
		}
		repl = append(repl, mk(tokens.RightBracket, "]"), mk(tokens.RightParenthesis, ")"), mk(tokens.LeftBracket, "["), mk(tokens.Integer, "0"), mk(tokens.RightBracket, "]"))
		end := hi
		if !hasElse {
			end = c
		}
		next := make([]*tokens.Token, 0, len(toks)+len(repl))
		next = append(next, toks[:lo]...)
		next = append(next, repl...)
		next = append(next, toks[end:]...)
		toks = next
	}
	return toks
}

// lastConditionalIf returns the index of the last `if` token that starts a
// conditional expression, or -1.
func lastConditionalIf(toks []*tokens.Token, skipTop bool) int {
	nest := 0
	last := -1
	for i, t := range toks {
		switch {
		case isOpen(t.Type):
			nest++
		case isClose(t.Type):
			if nest > 0 {
				nest--
			}
		case isName(t, "if"):
			if skipTop && nest == 0 {
				continue
			}
			if i > 0 && toks[i-1].Type == tokens.Dot {
				continue
			}
			last = i
		}
	}
	return last
}
