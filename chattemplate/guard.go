package chattemplate

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	cs "github.com/nikolalohinski/gonja/v2/builtins/control_structures"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// This file holds the per-render state, the resource limits, and the pass
// that rewrites a parsed template tree so that every block body and every
// operator goes through code of this package.

// Limits of one rendering. Real chat templates stay far below them.
const (
	maxSteps     = 1_000_000 // block-body executions and loop items (iterations, macro calls, ...)
	maxDepth     = 256       // nested block bodies (bounds macro and loop recursion)
	maxOutput    = 64 << 20  // bytes written to the output
	maxValueLen  = 16 << 20  // bytes of one string built by the template
	maxListLen   = 1 << 20   // items of one list built by the template
	maxAllocated = 512 << 20 // bytes of strings built by operators and filters, in total
	maxRange     = 100_000   // items of one range(), as in Jinja2's sandbox
	maxWidth     = 1 << 20   // width/count arguments of padding and formatting filters
)

var errValueTooLarge = errors.New("value too large (rendering limit)")

// stateKey is the context key of the render state. It contains spaces, so no
// template can name it.
const stateKey = "masque chattemplate state"

type renderState struct {
	steps, depth int
	allocated    int64
	now          time.Time
	raised       *string // message given to raise_exception
	limit        error   // first resource limit hit
}

func stateOf(ctx *exec.Context) *renderState {
	if ctx == nil {
		return nil
	}
	v, _ := ctx.Get(stateKey)
	st, _ := v.(*renderState)
	return st
}

func evalState(e *exec.Evaluator) *renderState {
	if e == nil || e.Environment == nil {
		return nil
	}
	return stateOf(e.Environment.Context)
}

func (st *renderState) fail(err error) error {
	if st != nil && st.limit == nil {
		st.limit = err
	}
	return err
}

// charge accounts n bytes (or items) of a value the template just built.
func (st *renderState) charge(n int) error {
	if n > maxValueLen {
		return st.fail(fmt.Errorf("%w: a value of %d bytes exceeds %d", errValueTooLarge, n, maxValueLen))
	}
	if st == nil {
		return nil
	}
	st.allocated += int64(n)
	if st.allocated > maxAllocated {
		return st.fail(fmt.Errorf("%w: the template built more than %d bytes of values", errValueTooLarge, maxAllocated))
	}
	return nil
}

// limitWriter is the rendering output; it stops at maxOutput bytes.
type limitWriter struct {
	st *renderState
	b  strings.Builder
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.b.Len()+len(p) > maxOutput {
		return 0, w.st.fail(fmt.Errorf("%w: output exceeds %d bytes", errValueTooLarge, maxOutput))
	}
	return w.b.Write(p)
}

func (w *limitWriter) WriteString(s string) (int, error) {
	if w.b.Len()+len(s) > maxOutput {
		return 0, w.st.fail(fmt.Errorf("%w: output exceeds %d bytes", errValueTooLarge, maxOutput))
	}
	return w.b.WriteString(s)
}

var _ io.StringWriter = (*limitWriter)(nil)

// bodyGuard runs the nodes of one block body, counting steps and depth.
type bodyGuard struct {
	loc   *tokens.Token
	nodes []nodes.Node
}

func (g *bodyGuard) Position() *tokens.Token { return g.loc }
func (g *bodyGuard) String() string          { return "body" }

// step accounts n units of work (loop items, block executions).
func (st *renderState) step(n int) error {
	if st == nil {
		return nil
	}
	st.steps += n
	if st.steps > maxSteps {
		return st.fail(fmt.Errorf("rendering limit: more than %d loop iterations or macro calls", maxSteps))
	}
	return nil
}

func (g *bodyGuard) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	st := stateOf(r.Environment.Context)
	if st != nil {
		if err := st.step(1); err != nil {
			return err
		}
		st.depth++
		defer func() { st.depth-- }()
		if st.depth > maxDepth {
			return st.fail(fmt.Errorf("rendering limit: blocks or macro calls nested more than %d deep (runaway recursion?)", maxDepth))
		}
	}
	for _, n := range g.nodes {
		if err := nodes.Walk(r, n); err != nil {
			return err
		}
	}
	return nil
}

// hardener rewrites a parsed template in place:
//   - every block body (loop, if branch, macro, call, ...) runs through a
//     bodyGuard;
//   - arithmetic and concatenation operators call this package's
//     Python-compatible, size-checked implementations;
//   - the iterable of a for loop goes through a filter that iterates strings
//     by character.
type hardener struct {
	exprs    map[nodes.Node]nodes.Node
	wrappers map[*nodes.Wrapper]bool
}

func harden(root *nodes.Template) error {
	h := &hardener{exprs: map[nodes.Node]nodes.Node{}, wrappers: map[*nodes.Wrapper]bool{}}
	for i, n := range root.Nodes {
		root.Nodes[i] = h.node(n)
	}
	for _, w := range root.Blocks {
		h.wrapper(w)
	}
	for _, m := range root.Macros {
		h.macro(m)
	}
	return nil
}

func (h *hardener) node(n nodes.Node) nodes.Node {
	switch x := n.(type) {
	case *nodes.Output:
		x.Expression = h.wrap(h.expr(x.Expression), opPrint)
		x.Condition = h.expr(x.Condition)
		x.Alternative = h.wrap(h.expr(x.Alternative), opPrint)
	case *nodes.ControlStructureBlock:
		h.controlStructure(x.ControlStructure)
	}
	return n
}

func (h *hardener) wrapper(w *nodes.Wrapper) {
	if w == nil || h.wrappers[w] {
		return
	}
	h.wrappers[w] = true
	inner := make([]nodes.Node, len(w.Nodes))
	for i, n := range w.Nodes {
		inner[i] = h.node(n)
	}
	w.Nodes = []nodes.Node{&nodes.ControlStructureBlock{
		Location:         w.Location,
		Name:             "body",
		ControlStructure: &bodyGuard{loc: w.Location, nodes: inner},
	}}
}

func (h *hardener) macro(m *nodes.Macro) {
	if m == nil {
		return
	}
	for _, p := range m.Kwargs {
		p.Value = h.expr(p.Value)
	}
	h.wrapper(m.Wrapper)
}

// controlStructure descends into the control structures the environment
// registers (see environment()); each one either has exported fields or is
// implemented in this package.
func (h *hardener) controlStructure(c nodes.ControlStructure) {
	switch x := c.(type) {
	case *cs.ForControlStructure:
		x.ObjectEvaluator = h.iterable(h.expr(x.ObjectEvaluator))
		x.IfCondition = h.expr(x.IfCondition)
		h.wrapper(x.BodyWrapper)
		h.wrapper(x.EmptyWrapper)
	case *cs.IfControlStructure:
		for i := range x.Conditions {
			x.Conditions[i] = h.expr(x.Conditions[i])
		}
		for _, w := range x.Wrappers {
			h.wrapper(w)
		}
	case *cs.MacroControlStructure:
		h.macro(x.Macro)
	case *cs.CallControlStructure:
		if c, ok := h.expr(x.Call).(*nodes.Call); ok {
			x.Call = c
		}
		h.wrapper(x.Body)
	case *cs.AutoescapeControlStructure:
		h.wrapper(x.Wrapper)
	case *setCS:
		x.value = h.expr(x.value)
		x.cond = h.expr(x.cond)
		x.alt = h.expr(x.alt)
		h.wrapper(x.body)
	case *withCS:
		for i := range x.values {
			x.values[i] = h.expr(x.values[i])
		}
		h.wrapper(x.body)
	case *filterCS:
		for _, f := range x.chain {
			h.filterCall(f)
		}
		h.wrapper(x.body)
	case *generationCS:
		h.wrapper(x.body)
	}
}

func (h *hardener) filterCall(f *nodes.FilterCall) {
	if f == nil {
		return
	}
	for i := range f.Args {
		f.Args[i] = h.expr(f.Args[i])
	}
	for k, a := range f.Kwargs {
		f.Kwargs[k] = h.expr(a)
	}
}

// Hidden filters that implement operators; their names cannot be written in
// a template.
const (
	opIter    = "masque:iter"
	opPrint   = "masque:print"
	opGetItem = "masque:getitem"
)

var opFilters = map[tokens.Type]string{
	tokens.Addition:           "masque:+",
	tokens.Subtraction:        "masque:-",
	tokens.Multiply:           "masque:*",
	tokens.Division:           "masque:/",
	tokens.FloorDivision:      "masque://",
	tokens.Modulo:             "masque:%",
	tokens.Power:              "masque:**",
	tokens.Tilde:              "masque:~",
	tokens.Equals:             "masque:==",
	tokens.Ne:                 "masque:!=",
	tokens.LowerThan:          "masque:<",
	tokens.LowerThanOrEqual:   "masque:<=",
	tokens.GreaterThan:        "masque:>",
	tokens.GreaterThanOrEqual: "masque:>=",
}

func (h *hardener) iterable(e nodes.Node) nodes.Node { return h.wrap(e, opIter) }

// wrap applies the hidden filter name to expression e.
func (h *hardener) wrap(e nodes.Node, name string) nodes.Node {
	if e == nil {
		return nil
	}
	return &nodes.FilteredExpression{
		Expression: e,
		Filters:    []*nodes.FilterCall{{Token: e.Position(), Name: name, Kwargs: map[string]nodes.Expression{}}},
	}
}

func (h *hardener) expr(n nodes.Node) nodes.Node {
	if n == nil {
		return nil
	}
	if r, ok := h.exprs[n]; ok {
		return r
	}
	h.exprs[n] = n // guards against cycles while descending
	out := n
	switch x := n.(type) {
	case *nodes.BinaryExpression:
		x.Left = h.expr(x.Left)
		x.Right = h.expr(x.Right)
		if x.Operator != nil && x.Operator.Token != nil {
			if name, ok := opFilters[x.Operator.Token.Type]; ok {
				out = &nodes.FilteredExpression{
					Expression: x.Left,
					Filters: []*nodes.FilterCall{{
						Token:  x.Operator.Token,
						Name:   name,
						Args:   []nodes.Expression{x.Right},
						Kwargs: map[string]nodes.Expression{},
					}},
				}
			}
		}
	case *nodes.List:
		for i := range x.Val {
			x.Val[i] = h.expr(x.Val[i])
		}
	case *nodes.Tuple:
		for i := range x.Val {
			x.Val[i] = h.expr(x.Val[i])
		}
	case *nodes.Dict:
		for _, p := range x.Pairs {
			p.Key = h.expr(p.Key)
			p.Value = h.expr(p.Value)
		}
	case *nodes.Pair:
		x.Key = h.expr(x.Key)
		x.Value = h.expr(x.Value)
	case *nodes.Call:
		x.Func = h.expr(x.Func)
		x.Parent = h.expr(x.Parent)
		for i := range x.Args {
			x.Args[i] = h.expr(x.Args[i])
		}
		for k, a := range x.Kwargs {
			x.Kwargs[k] = h.expr(a)
		}
	case *nodes.GetItem:
		x.Node = h.expr(x.Node)
		x.Arg = h.expr(x.Arg)
		if x.Arg != nil {
			out = &nodes.FilteredExpression{
				Expression: x.Node,
				Filters: []*nodes.FilterCall{{
					Token: x.Location, Name: opGetItem,
					Args: []nodes.Expression{x.Arg}, Kwargs: map[string]nodes.Expression{},
				}},
			}
		}
	case *nodes.GetSlice:
		x.Node = h.expr(x.Node)
		x.Start = h.expr(x.Start)
		x.End = h.expr(x.End)
		x.Step = h.expr(x.Step)
	case *nodes.GetAttribute:
		x.Node = h.expr(x.Node)
	case *nodes.Negation:
		x.Term = h.expr(x.Term)
	case *nodes.UnaryExpression:
		x.Term = h.expr(x.Term)
	case *nodes.FilteredExpression:
		x.Expression = h.expr(x.Expression)
		for _, f := range x.Filters {
			h.filterCall(f)
		}
	case *nodes.TestExpression:
		x.Expression = h.expr(x.Expression)
		if x.Test != nil {
			for i := range x.Test.Args {
				x.Test.Args[i] = h.expr(x.Test.Args[i])
			}
			for k, a := range x.Test.Kwargs {
				x.Test.Kwargs[k] = h.expr(a)
			}
		}
	}
	h.exprs[n] = out
	return out
}
