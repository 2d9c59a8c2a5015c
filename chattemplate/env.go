package chattemplate

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
	"github.com/nikolalohinski/gonja/v2/tokens"
)

// This file builds the gonja environment: the control structures, global
// functions, filters, tests and methods templates can use.

var (
	envOnce sync.Once
	envVal  *exec.Environment
)

func environment() *exec.Environment {
	envOnce.Do(func() {
		envVal = &exec.Environment{
			Context:           globals(),
			Filters:           filters(),
			Tests:             tests(),
			ControlStructures: controlStructures(),
			Methods:           methods(),
		}
	})
	return envVal
}

func controlStructures() *exec.ControlStructureSet {
	set := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{})
	// gonja's own implementations; harden() knows their fields.
	for _, name := range []string{"for", "if", "macro", "call", "raw", "autoescape", "block", "break", "continue"} {
		p, ok := builtins.ControlStructures.Get(name)
		if !ok {
			panic("chattemplate: gonja lacks control structure " + name)
		}
		mustRegister(set.Register(name, p))
	}
	mustRegister(set.Register("set", parseSet))
	mustRegister(set.Register("with", parseWith))
	mustRegister(set.Register("filter", parseFilterBlock))
	mustRegister(set.Register("generation", parseGeneration))
	for _, name := range []string{"include", "import", "from", "extends"} {
		mustRegister(set.Register(name, parseUnsupported(name)))
	}
	return set
}

func mustRegister(err error) {
	if err != nil {
		panic("chattemplate: " + err.Error())
	}
}

func globals() *exec.Context {
	ctx := exec.EmptyContext()
	for _, name := range []string{"cycler", "joiner", "lipsum"} {
		if f, ok := builtins.GlobalFunctions.Get(name); ok {
			ctx.Set(name, f)
		}
	}
	ctx.Set("range", rangeFunc)
	ctx.Set("dict", dictFunc)
	ctx.Set("namespace", namespaceFunc)
	ctx.Set("raise_exception", raiseException)
	ctx.Set("strftime_now", strftimeNow)
	return ctx
}

// ---------------------------------------------------------------------------
// Global functions

// raiseError is the error raise_exception produces.
type raiseError struct{ msg string }

func (e *raiseError) Error() string { return e.msg }

func raiseException(e *exec.Evaluator, va *exec.VarArgs) *exec.Value {
	msg := ""
	if len(va.Args) > 0 {
		msg = pyStr(va.Args[0])
	}
	if st := evalState(e); st != nil && st.raised == nil {
		st.raised = &msg
	}
	return exec.AsValue(&raiseError{msg})
}

func strftimeNow(e *exec.Evaluator, va *exec.VarArgs) *exec.Value {
	if len(va.Args) != 1 || !va.Args[0].IsString() {
		return exec.AsValue(fmt.Errorf("strftime_now() takes one format string"))
	}
	st := evalState(e)
	if st == nil {
		return exec.AsValue(fmt.Errorf("strftime_now: no render state"))
	}
	return exec.AsValue(pyStrftime(st.now, va.Args[0].String()))
}

func intArg(v *exec.Value) (int, bool) {
	switch {
	case v.IsBool():
		if v.Bool() {
			return 1, true
		}
		return 0, true
	case v.IsInteger():
		return v.Integer(), true
	}
	return 0, false
}

func rangeFunc(e *exec.Evaluator, va *exec.VarArgs) *exec.Value {
	if len(va.KwArgs) > 0 || len(va.Args) < 1 || len(va.Args) > 3 {
		return exec.AsValue(fmt.Errorf("range() takes 1 to 3 integer arguments"))
	}
	nums := make([]int, len(va.Args))
	for i, a := range va.Args {
		n, ok := intArg(a)
		if !ok {
			return exec.AsValue(fmt.Errorf("range() arguments must be integers, not %s", pyTypeName(a)))
		}
		nums[i] = n
	}
	start, stop, step := 0, 0, 1
	switch len(nums) {
	case 1:
		stop = nums[0]
	case 2:
		start, stop = nums[0], nums[1]
	case 3:
		start, stop, step = nums[0], nums[1], nums[2]
	}
	if step == 0 {
		return exec.AsValue(fmt.Errorf("range() arg 3 must not be zero"))
	}
	var n int64
	if step > 0 && stop > start {
		n = (int64(stop) - int64(start) + int64(step) - 1) / int64(step)
	} else if step < 0 && stop < start {
		n = (int64(start) - int64(stop) - int64(step) - 1) / -int64(step)
	}
	st := evalState(e)
	if n > maxRange {
		return exec.AsValue(st.fail(fmt.Errorf("range too big: the sandbox blocks ranges larger than %d", maxRange)))
	}
	// Building a range costs steps even before any loop body runs.
	if err := st.step(int(n)); err != nil {
		return exec.AsValue(err)
	}
	out := make([]any, 0, n)
	for i, v := int64(0), start; i < n; i, v = i+1, v+step {
		out = append(out, v)
	}
	return exec.AsValue(out)
}

func dictFunc(e *exec.Evaluator, va *exec.VarArgs) *exec.Value {
	d := &exec.Dict{Pairs: []*exec.Pair{}}
	for _, a := range va.Args {
		if !a.IsDict() {
			return exec.AsValue(fmt.Errorf("dict() positional argument must be a mapping"))
		}
		for _, p := range dictPairs(a) {
			setDictItem(d, p.Key.String(), p.Value.Interface())
		}
	}
	for _, k := range sortedKwargs(va) {
		setDictItem(d, k, va.KwArgs[k].Interface())
	}
	return exec.AsValue(d)
}

func sortedKwargs(va *exec.VarArgs) []string {
	keys := make([]string, 0, len(va.KwArgs))
	for k := range va.KwArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// namespace is the object namespace() returns: attributes can be assigned
// with {% set ns.attr = value %}.
type namespace struct {
	keys []string
	vals map[string]*exec.Value
}

func (n *namespace) GetAttribute(name string) (*exec.Value, bool) {
	v, ok := n.vals[name]
	if !ok {
		return exec.AsValue(nil), false
	}
	return v, true
}

func (n *namespace) GetItem(key any) (*exec.Value, bool) {
	k, ok := key.(string)
	if !ok {
		return exec.AsValue(nil), false
	}
	return n.GetAttribute(k)
}

func (n *namespace) set(name string, v *exec.Value) {
	if _, ok := n.vals[name]; !ok {
		n.keys = append(n.keys, name)
	}
	n.vals[name] = v
}

func (n *namespace) String() string { return pyRepr(exec.AsValue(n)) }

func namespaceFunc(e *exec.Evaluator, va *exec.VarArgs) *exec.Value {
	ns := &namespace{vals: map[string]*exec.Value{}}
	for _, a := range va.Args {
		if !a.IsDict() {
			return exec.AsValue(fmt.Errorf("namespace() positional argument must be a mapping"))
		}
		for _, p := range dictPairs(a) {
			ns.set(p.Key.String(), p.Value)
		}
	}
	for _, k := range sortedKwargs(va) {
		ns.set(k, va.KwArgs[k])
	}
	return exec.AsValue(ns)
}

// dictPairs returns the items of a dict value in order.
func dictPairs(v *exec.Value) []*exec.Pair {
	var out []*exec.Pair
	switch d := v.Interface().(type) {
	case *exec.Dict:
		return d.Pairs
	case exec.Dict:
		return d.Pairs
	}
	if v.IsDict() {
		for _, k := range v.Keys() {
			item, _ := v.GetItem(k.Interface())
			out = append(out, &exec.Pair{Key: k, Value: item})
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// Control structures implemented here

func tokenText(t *tokens.Token) string {
	if t == nil {
		return "end of tag"
	}
	if t.Type == tokens.EOF {
		return "end of tag"
	}
	return fmt.Sprintf("%q", t.Val)
}

// setCS implements {% set %}: to a name, to several names (unpacking), to
// a namespace attribute, or as a block.
type setCS struct {
	loc   *tokens.Token
	names []string
	ns    string // namespace variable, when assigning ns.attr
	attr  string
	value nodes.Expression
	cond  nodes.Expression
	alt   nodes.Expression
	body  *nodes.Wrapper
	tuple bool
}

func (c *setCS) Position() *tokens.Token { return c.loc }
func (c *setCS) String() string          { return fmt.Sprintf("set(line %d)", c.loc.Line) }

func parseSet(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	c := &setCS{loc: args.Current()}
	first := args.Match(tokens.Name)
	if first == nil {
		return nil, args.Error("expected a variable name after 'set', got "+tokenText(args.Current()), args.Current())
	}
	if args.Match(tokens.Dot) != nil {
		attr := args.Match(tokens.Name)
		if attr == nil {
			return nil, args.Error("expected an attribute name", args.Current())
		}
		c.ns, c.attr = first.Val, attr.Val
	} else {
		c.names = []string{first.Val}
		for args.Match(tokens.Comma) != nil {
			n := args.Match(tokens.Name)
			if n == nil {
				return nil, args.Error("expected a variable name", args.Current())
			}
			c.names = append(c.names, n.Val)
		}
	}
	if args.Match(tokens.Assign) == nil {
		if !args.End() {
			return nil, args.Error("expected '=' in set tag, got "+tokenText(args.Current()), args.Current())
		}
		if len(c.names) > 1 {
			return nil, args.Error("cannot unpack a set block", c.loc)
		}
		wrapper, endargs, err := p.WrapUntil("endset")
		if err != nil {
			return nil, err
		}
		if !endargs.End() {
			return nil, endargs.Error("endset takes no arguments", endargs.Current())
		}
		c.body = wrapper
		return c, nil
	}
	expr, err := args.ParseExpression()
	if err != nil {
		return nil, err
	}
	if args.Current(tokens.Comma) != nil {
		items := []nodes.Expression{expr}
		for args.Match(tokens.Comma) != nil {
			if args.End() {
				break
			}
			e, err := args.ParseExpression()
			if err != nil {
				return nil, err
			}
			items = append(items, e)
		}
		expr = &nodes.Tuple{Location: c.loc, Val: items}
		c.tuple = true
	}
	c.value = expr
	cond, alt, err := args.ParseCondition()
	if err != nil {
		return nil, err
	}
	c.cond, c.alt = cond, alt
	if !args.End() {
		return nil, args.Error("unexpected "+tokenText(args.Current())+" in set tag", args.Current())
	}
	return c, nil
}

func (c *setCS) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	var v *exec.Value
	switch {
	case c.body != nil:
		var buf bytes.Buffer
		sub := r.Inherit()
		sub.Output = &buf
		if err := sub.ExecuteWrapper(c.body); err != nil {
			return err
		}
		v = exec.AsSafeValue(buf.String())
	case c.cond != nil:
		cond := r.Eval(c.cond)
		if cond.IsError() {
			return cond
		}
		if cond.IsTrue() {
			v = r.Eval(c.value)
		} else if c.alt != nil {
			v = r.Eval(c.alt)
		} else {
			v = exec.AsValue(nil)
		}
	default:
		v = r.Eval(c.value)
	}
	if v.IsError() {
		return v
	}
	ctx := r.Environment.Context
	if c.ns != "" {
		target, _ := ctx.Get(c.ns)
		ns, ok := exec.ToValue(target).Interface().(*namespace)
		if !ok {
			return fmt.Errorf("line %d: cannot assign attribute %q on non-namespace object %q", c.loc.Line, c.attr, c.ns)
		}
		ns.set(c.attr, exec.ToValue(v.Interface()))
		return nil
	}
	if len(c.names) == 1 {
		ctx.Set(c.names[0], v.Interface())
		return nil
	}
	if !v.IsList() {
		return fmt.Errorf("line %d: cannot unpack non-sequence %s", c.loc.Line, pyTypeName(v))
	}
	if v.Len() != len(c.names) {
		return fmt.Errorf("line %d: expected %d values to unpack, got %d", c.loc.Line, len(c.names), v.Len())
	}
	for i, n := range c.names {
		ctx.Set(n, v.Index(i).Interface())
	}
	return nil
}

// withCS implements {% with a = x, b = y %}...{% endwith %}.
type withCS struct {
	loc    *tokens.Token
	names  []string
	values []nodes.Expression
	body   *nodes.Wrapper
}

func (c *withCS) Position() *tokens.Token { return c.loc }
func (c *withCS) String() string          { return fmt.Sprintf("with(line %d)", c.loc.Line) }

func parseWith(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	c := &withCS{loc: args.Current()}
	for !args.End() {
		n := args.Match(tokens.Name)
		if n == nil {
			return nil, args.Error("expected a variable name in with tag, got "+tokenText(args.Current()), args.Current())
		}
		if args.Match(tokens.Assign) == nil {
			return nil, args.Error("expected '=' in with tag", args.Current())
		}
		e, err := args.ParseExpression()
		if err != nil {
			return nil, err
		}
		c.names = append(c.names, n.Val)
		c.values = append(c.values, e)
		if args.Match(tokens.Comma) == nil {
			break
		}
	}
	if !args.End() {
		return nil, args.Error("unexpected "+tokenText(args.Current())+" in with tag", args.Current())
	}
	wrapper, endargs, err := p.WrapUntil("endwith")
	if err != nil {
		return nil, err
	}
	if !endargs.End() {
		return nil, endargs.Error("endwith takes no arguments", endargs.Current())
	}
	c.body = wrapper
	return c, nil
}

func (c *withCS) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	vals := make([]*exec.Value, len(c.values))
	for i, e := range c.values {
		vals[i] = r.Eval(e)
		if vals[i].IsError() {
			return vals[i]
		}
	}
	sub := r.Inherit()
	for i, n := range c.names {
		sub.Environment.Context.Set(n, vals[i].Interface())
	}
	return sub.ExecuteWrapper(c.body)
}

// filterCS implements {% filter f(args)|g %}...{% endfilter %}.
type filterCS struct {
	loc   *tokens.Token
	chain []*nodes.FilterCall
	body  *nodes.Wrapper
}

func (c *filterCS) Position() *tokens.Token { return c.loc }
func (c *filterCS) String() string          { return fmt.Sprintf("filter(line %d)", c.loc.Line) }

func parseFilterBlock(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	c := &filterCS{loc: args.Current()}
	for !args.End() {
		f, err := args.ParseFilter()
		if err != nil {
			return nil, err
		}
		c.chain = append(c.chain, f)
		if args.Match(tokens.Pipe) == nil {
			break
		}
	}
	if len(c.chain) == 0 || !args.End() {
		return nil, args.Error("malformed filter tag", args.Current())
	}
	wrapper, endargs, err := p.WrapUntil("endfilter")
	if err != nil {
		return nil, err
	}
	if !endargs.End() {
		return nil, endargs.Error("endfilter takes no arguments", endargs.Current())
	}
	c.body = wrapper
	return c, nil
}

func (c *filterCS) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	var buf bytes.Buffer
	sub := r.Inherit()
	sub.Output = &buf
	if err := sub.ExecuteWrapper(c.body); err != nil {
		return err
	}
	v := exec.AsValue(buf.String())
	ev := r.Evaluator()
	for _, f := range c.chain {
		v = ev.ExecuteFilter(f, v)
		if v.IsError() {
			return v
		}
	}
	_, err := io.WriteString(r.Output, pyStr(v))
	return err
}

// generationCS implements transformers' {% generation %}...{% endgeneration %}
// block, which marks assistant output for assistant-token masks; it renders
// its body unchanged.
type generationCS struct {
	loc  *tokens.Token
	body *nodes.Wrapper
}

func (c *generationCS) Position() *tokens.Token { return c.loc }
func (c *generationCS) String() string          { return fmt.Sprintf("generation(line %d)", c.loc.Line) }

func parseGeneration(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
	c := &generationCS{loc: args.Current()}
	if !args.End() {
		return nil, args.Error("generation takes no arguments", args.Current())
	}
	wrapper, endargs, err := p.WrapUntil("endgeneration")
	if err != nil {
		return nil, err
	}
	if !endargs.End() {
		return nil, endargs.Error("endgeneration takes no arguments", endargs.Current())
	}
	c.body = wrapper
	return c, nil
}

func (c *generationCS) Execute(r *exec.Renderer, _ *nodes.ControlStructureBlock) error {
	return r.ExecuteWrapper(c.body)
}

// unsupportedCS stands for include/import/from/extends: chat templates are
// standalone, as in transformers, so these fail when executed.
type unsupportedCS struct {
	loc  *tokens.Token
	name string
}

func (c *unsupportedCS) Position() *tokens.Token { return c.loc }
func (c *unsupportedCS) String() string          { return c.name }

func parseUnsupported(name string) parser.ControlStructureParser {
	return func(p *parser.Parser, args *parser.Parser) (nodes.ControlStructure, error) {
		return &unsupportedCS{loc: args.Current(), name: name}, nil
	}
}

func (c *unsupportedCS) Execute(*exec.Renderer, *nodes.ControlStructureBlock) error {
	return fmt.Errorf("line %d: {%% %s %%} is not available: chat templates cannot load other templates", c.loc.Line, c.name)
}
