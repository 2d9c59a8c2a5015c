package chattemplate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/exec"
)

// This file holds the filters, tests and methods that differ from gonja's,
// the operator implementations, and Python str()/repr() of template values.

// gonjaFilters lists the gonja filters kept (and size-checked).
var gonjaFilters = []string{
	"abs", "attr", "batch", "capitalize", "center", "default", "d", "e", "escape",
	"filesizeformat", "first", "forceescape", "groupby", "indent", "last",
	"length", "count", "list", "lower", "map", "max", "min", "pprint", "random", "rejectattr",
	"reject", "replace", "safe", "selectattr", "select", "slice",
	"striptags", "sum", "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize",
	"wordcount", "wordwrap", "xmlattr",
}

// widthFilters take a width or count that sizes their result.
var widthFilters = map[string]bool{
	"center": true, "indent": true, "wordwrap": true, "truncate": true, "batch": true,
	"slice": true, "ljust": true, "rjust": true, "zfill": true, "expandtabs": true,
}

func filters() *exec.FilterSet {
	set := exec.NewFilterSet(map[string]exec.FilterFunction{})
	for _, name := range gonjaFilters {
		f, ok := builtins.Filters.Get(name)
		if !ok {
			continue
		}
		mustRegister(set.Register(name, guardFilter(name, f)))
	}
	mine := map[string]exec.FilterFunction{
		"tojson":   filterToJSON,
		"items":    filterItems,
		"string":   filterString,
		"join":     filterJoin,
		"format":   filterFormat,
		"sort":     filterSort,
		"dictsort": filterDictSort,
		"reverse":  filterReverse,
		"round":    filterRound,
		"int":      filterInt,
		"float":    filterFloat,
		opIter:     filterIter,
		opGetItem:  filterGetItem,
		opPrint:    filterPrint,
	}
	for _, name := range opFilters {
		mine[name] = opFilter(strings.TrimPrefix(name, "masque:"))
	}
	for name, f := range mine {
		mustRegister(set.Register(name, f))
	}
	return set
}

// guardFilter wraps a gonja filter with size checks.
func guardFilter(name string, f exec.FilterFunction) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
		st := evalState(e)
		if in.IsError() {
			return in
		}
		if err := checkSizeArgs(name, in, params.Args, params.KwArgs); err != nil {
			return exec.AsValue(st.fail(err))
		}
		out := f(e, in, params)
		if out != nil && out.IsString() {
			if err := st.charge(len(out.String())); err != nil {
				return exec.AsValue(err)
			}
		}
		return out
	}
}

// checkSizeArgs rejects width arguments and replacements that would build
// huge strings, before the work is done.
func checkSizeArgs(name string, in *exec.Value, args []*exec.Value, kwargs map[string]*exec.Value) error {
	if widthFilters[name] {
		check := func(v *exec.Value) error {
			if n, ok := intArg(v); ok && (n > maxWidth || n < -maxWidth) {
				return fmt.Errorf("%w: %s() argument %d is too large", errValueTooLarge, name, n)
			}
			return nil
		}
		for _, a := range args {
			if err := check(a); err != nil {
				return err
			}
		}
		for _, a := range kwargs {
			if err := check(a); err != nil {
				return err
			}
		}
		if name == "indent" && in.IsString() {
			lines := strings.Count(in.String(), "\n") + 1
			if int64(lines)*maxWidth/16 > maxValueLen {
				for _, a := range args {
					if n, ok := intArg(a); ok && int64(n)*int64(lines) > maxValueLen {
						return fmt.Errorf("%w: indent() result too large", errValueTooLarge)
					}
				}
			}
		}
	}
	if name == "replace" && in.IsString() && len(args) >= 2 {
		s, old, repl := in.String(), args[0].String(), args[1].String()
		n := strings.Count(s, old)
		if int64(len(s))+int64(n)*int64(len(repl)) > maxValueLen {
			return fmt.Errorf("%w: replace() result too large", errValueTooLarge)
		}
	}
	return nil
}

// bindArgs maps positional and keyword arguments onto parameter names.
func bindArgs(fname string, va *exec.VarArgs, names ...string) (map[string]*exec.Value, error) {
	out := map[string]*exec.Value{}
	if len(va.Args) > len(names) {
		return nil, fmt.Errorf("%s() takes at most %d arguments (%d given)", fname, len(names), len(va.Args))
	}
	for i, a := range va.Args {
		out[names[i]] = a
	}
	for k, v := range va.KwArgs {
		found := false
		for _, n := range names {
			if n == k {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s() got an unexpected keyword argument '%s'", fname, k)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s() got multiple values for argument '%s'", fname, k)
		}
		out[k] = v
	}
	return out, nil
}

func filterToJSON(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("tojson", va, "ensure_ascii", "indent", "separators", "sort_keys")
	if err != nil {
		return exec.AsValue(err)
	}
	opt := jsonOptions{itemSep: ", ", keySep: ": "}
	if v, ok := args["ensure_ascii"]; ok {
		opt.ensureASCII = v.IsTrue()
	}
	if v, ok := args["sort_keys"]; ok {
		opt.sortKeys = v.IsTrue()
	}
	if v, ok := args["indent"]; ok && !v.IsNil() {
		opt.hasIndent = true
		switch {
		case v.IsString():
			opt.indent = v.String()
		case v.IsInteger():
			n := v.Integer()
			if n > 64 {
				return exec.AsValue(fmt.Errorf("tojson: indent %d too large", n))
			}
			opt.indent = strings.Repeat(" ", max(n, 0))
		default:
			return exec.AsValue(fmt.Errorf("tojson: indent must be an int or a string"))
		}
		opt.itemSep = ","
	}
	if v, ok := args["separators"]; ok && !v.IsNil() {
		if !v.IsList() || v.Len() != 2 {
			return exec.AsValue(fmt.Errorf("tojson: separators must be a pair of strings"))
		}
		opt.itemSep, opt.keySep = v.Index(0).String(), v.Index(1).String()
	}
	s, err := pyJSONDumps(in, opt, maxValueLen)
	if err != nil {
		return exec.AsValue(evalState(e).fail(err))
	}
	if err := evalState(e).charge(len(s)); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsSafeValue(s)
}

// filterItems is Jinja's items filter: the (key, value) pairs of a mapping,
// in order.
func filterItems(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if in.IsNil() {
		return exec.AsValue([]any{})
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("items: can only get item pairs from a mapping, not %s", pyTypeName(in)))
	}
	return exec.AsValue(itemsList(in))
}

func itemsList(in *exec.Value) []any {
	pairs := dictPairs(in)
	out := make([]any, len(pairs))
	for i, p := range pairs {
		out[i] = []any{p.Key.Interface(), p.Value.Interface()}
	}
	return out
}

func filterString(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	s := pyStr(in)
	if err := evalState(e).charge(len(s)); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(s)
}

func filterPrint(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() || in.IsString() {
		return in
	}
	return exec.AsValue(pyStr(in))
}

// filterIter prepares the iterable of a for loop: strings iterate by
// character, undefined and None by nothing.
func filterIter(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	switch {
	case in.IsError():
		return in
	case in.IsNil():
		return exec.AsValue([]any{})
	case in.IsString():
		s := in.String()
		out := make([]any, 0, utf8.RuneCountInString(s))
		for _, r := range s {
			out = append(out, string(r))
		}
		return exec.AsValue(out)
	case in.IsList(), in.IsDict():
		if err := evalState(e).step(in.Len()); err != nil {
			return exec.AsValue(err)
		}
		return in
	case in.IsCallable():
		return in // a channel-less generator such as gonja's lipsum is not iterable anyway
	}
	return exec.AsValue(fmt.Errorf("'%s' object is not iterable", pyTypeName(in)))
}

func filterJoin(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("join", va, "d", "attribute")
	if err != nil {
		return exec.AsValue(err)
	}
	sep := ""
	if d, ok := args["d"]; ok {
		sep = pyStr(d)
	}
	items := iterValues(in)
	if items == nil && !in.IsNil() && !in.IsIterable() {
		return exec.AsValue(fmt.Errorf("join: '%s' object is not iterable", pyTypeName(in)))
	}
	var b strings.Builder
	for i, it := range items {
		if a, ok := args["attribute"]; ok && !a.IsNil() {
			it, _ = it.Get(a.String())
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(pyStr(it))
		if b.Len() > maxValueLen {
			return exec.AsValue(evalState(e).fail(fmt.Errorf("%w: join() result too large", errValueTooLarge)))
		}
	}
	if err := evalState(e).charge(b.Len()); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsValue(b.String())
}

// iterValues lists what iterating v yields (characters of a string, keys of
// a dict, items of a list).
func iterValues(v *exec.Value) []*exec.Value {
	switch {
	case v.IsString():
		var out []*exec.Value
		for _, r := range v.String() {
			out = append(out, exec.AsValue(string(r)))
		}
		return out
	case v.IsList():
		out := make([]*exec.Value, v.Len())
		for i := range out {
			out[i] = v.Index(i)
		}
		return out
	case v.IsDict():
		pairs := dictPairs(v)
		out := make([]*exec.Value, len(pairs))
		for i, p := range pairs {
			out[i] = p.Key
		}
		return out
	}
	return nil
}

func filterFormat(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(va.Args) > 0 && len(va.KwArgs) > 0 {
		return exec.AsValue(fmt.Errorf("format: can't handle positional and keyword arguments at the same time"))
	}
	var arg *exec.Value
	if len(va.KwArgs) > 0 {
		d := &exec.Dict{}
		for _, k := range sortedKwargs(va) {
			setDictItem(d, k, va.KwArgs[k].Interface())
		}
		arg = exec.AsValue(d)
	} else {
		args := make([]any, len(va.Args))
		for i, a := range va.Args {
			args[i] = a.Interface()
		}
		arg = exec.AsValue(args)
	}
	s, err := pyPercent(pyStr(in), arg, true)
	if err != nil {
		return exec.AsValue(evalState(e).fail(err))
	}
	return exec.AsValue(s)
}

// ---------------------------------------------------------------------------
// Operators

type pyNum struct {
	isInt bool
	i     int
	f     float64
}

func asNum(v *exec.Value) (pyNum, bool) {
	switch {
	case v.IsBool():
		if v.Bool() {
			return pyNum{isInt: true, i: 1, f: 1}, true
		}
		return pyNum{isInt: true}, true
	case v.IsInteger():
		return pyNum{isInt: true, i: v.Integer(), f: float64(v.Integer())}, true
	case v.IsFloat():
		return pyNum{f: v.Float()}, true
	}
	return pyNum{}, false
}

var errIntOverflow = fmt.Errorf("integer overflow")

func opFilter(op string) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
		if in.IsError() {
			return in
		}
		if len(va.Args) != 1 {
			return exec.AsValue(fmt.Errorf("operator %s needs two operands", op))
		}
		b := va.Args[0]
		if b.IsError() {
			return b
		}
		st := evalState(e)
		v, err := binaryOp(op, in, b, st)
		if err != nil {
			if st != nil && st.limit == nil && strings.Contains(err.Error(), errValueTooLarge.Error()) {
				st.limit = err
			}
			return exec.AsValue(err)
		}
		return exec.AsValue(v)
	}
}

func unsupportedOperands(op string, a, b *exec.Value) error {
	return fmt.Errorf("unsupported operand type(s) for %s: '%s' and '%s'", op, pyTypeName(a), pyTypeName(b))
}

func binaryOp(op string, a, b *exec.Value, st *renderState) (any, error) {
	na, aNum := asNum(a)
	nb, bNum := asNum(b)
	switch op {
	case "==":
		return pyEqual(a, b), nil
	case "!=":
		return !pyEqual(a, b), nil
	case "<", "<=", ">", ">=":
		c, err := pyCompare(a, b, true)
		if err != nil {
			return nil, fmt.Errorf("'%s' not supported between instances of '%s' and '%s'", op, pyTypeName(a), pyTypeName(b))
		}
		switch op {
		case "<":
			return c < 0, nil
		case "<=":
			return c <= 0, nil
		case ">":
			return c > 0, nil
		}
		return c >= 0, nil
	case "~":
		s := pyStr(a) + pyStr(b)
		return s, st.charge(len(s))
	case "+":
		switch {
		case aNum && bNum:
			if na.isInt && nb.isInt {
				r := na.i + nb.i
				if (r > na.i) != (nb.i > 0) {
					return nil, errIntOverflow
				}
				return r, nil
			}
			return na.f + nb.f, nil
		case a.IsString() && b.IsString():
			s := a.String() + b.String()
			return s, st.charge(len(s))
		case a.IsList() && b.IsList():
			n := a.Len() + b.Len()
			if n > maxListLen {
				return nil, fmt.Errorf("%w: a list of %d items exceeds %d", errValueTooLarge, n, maxListLen)
			}
			if err := st.charge(8 * n); err != nil {
				return nil, err
			}
			return appendItems(appendItems(make([]any, 0, n), a), b), nil
		case a.IsString():
			return nil, fmt.Errorf("can only concatenate str (not \"%s\") to str", pyTypeName(b))
		case a.IsList():
			return nil, fmt.Errorf("can only concatenate list (not \"%s\") to list", pyTypeName(b))
		}
		return nil, unsupportedOperands(op, a, b)
	case "-":
		if aNum && bNum {
			if na.isInt && nb.isInt {
				r := na.i - nb.i
				if (r < na.i) != (nb.i > 0) {
					return nil, errIntOverflow
				}
				return r, nil
			}
			return na.f - nb.f, nil
		}
		return nil, unsupportedOperands(op, a, b)
	case "*":
		switch {
		case aNum && bNum:
			if na.isInt && nb.isInt {
				if na.i != 0 && nb.i != 0 {
					r := na.i * nb.i
					if r/nb.i != na.i || (na.i == -1 && nb.i == math.MinInt) || (nb.i == -1 && na.i == math.MinInt) {
						return nil, errIntOverflow
					}
					return r, nil
				}
				return 0, nil
			}
			return na.f * nb.f, nil
		case (a.IsString() || a.IsList()) && bNum && nb.isInt:
			return repeatSeq(a, nb.i, st)
		case (b.IsString() || b.IsList()) && aNum && na.isInt:
			return repeatSeq(b, na.i, st)
		}
		return nil, unsupportedOperands(op, a, b)
	case "/":
		if aNum && bNum {
			if nb.f == 0 {
				return nil, fmt.Errorf("division by zero")
			}
			return na.f / nb.f, nil
		}
		return nil, unsupportedOperands(op, a, b)
	case "//":
		if aNum && bNum {
			if nb.f == 0 {
				return nil, fmt.Errorf("integer division or modulo by zero")
			}
			if na.isInt && nb.isInt {
				if na.i == math.MinInt && nb.i == -1 {
					return nil, errIntOverflow
				}
				q := na.i / nb.i
				if (na.i%nb.i != 0) && ((na.i < 0) != (nb.i < 0)) {
					q--
				}
				return q, nil
			}
			return math.Floor(na.f / nb.f), nil
		}
		return nil, unsupportedOperands(op, a, b)
	case "%":
		if a.IsString() {
			s, err := pyPercent(a.String(), b, false)
			if err != nil {
				return nil, err
			}
			return s, st.charge(len(s))
		}
		if aNum && bNum {
			if nb.f == 0 {
				return nil, fmt.Errorf("integer division or modulo by zero")
			}
			if na.isInt && nb.isInt {
				if nb.i == -1 {
					return 0, nil
				}
				m := na.i % nb.i
				if m != 0 && ((m < 0) != (nb.i < 0)) {
					m += nb.i
				}
				return m, nil
			}
			m := math.Mod(na.f, nb.f)
			if m != 0 && ((m < 0) != (nb.f < 0)) {
				m += nb.f
			}
			return m, nil
		}
		return nil, unsupportedOperands(op, a, b)
	case "**":
		if aNum && bNum {
			if na.isInt && nb.isInt && nb.i >= 0 {
				r, base, exp := 1, na.i, nb.i
				for exp > 0 {
					if exp&1 == 1 {
						if base != 0 && (r*base)/base != r {
							return nil, errIntOverflow
						}
						r *= base
					}
					exp >>= 1
					if exp > 0 {
						if base != 0 && (base*base)/base != base {
							return nil, errIntOverflow
						}
						base *= base
					}
				}
				return r, nil
			}
			if na.f == 0 && nb.f < 0 {
				return nil, fmt.Errorf("0.0 cannot be raised to a negative power")
			}
			return math.Pow(na.f, nb.f), nil
		}
		return nil, unsupportedOperands(op, a, b)
	}
	return nil, fmt.Errorf("unknown operator %s", op)
}

func repeatSeq(seq *exec.Value, n int, st *renderState) (any, error) {
	if n <= 0 {
		if seq.IsString() {
			return "", nil
		}
		return []any{}, nil
	}
	if seq.IsString() {
		s := seq.String()
		if int64(len(s))*int64(n) > maxValueLen {
			return nil, fmt.Errorf("%w: string repetition result too large", errValueTooLarge)
		}
		r := strings.Repeat(s, n)
		return r, st.charge(len(r))
	}
	l := seq.Len()
	if int64(l)*int64(n) > maxListLen {
		return nil, fmt.Errorf("%w: list repetition result too large", errValueTooLarge)
	}
	if err := st.charge(l * n * 8); err != nil {
		return nil, err
	}
	out := make([]any, 0, l*n)
	for range n {
		out = appendItems(out, seq)
	}
	return out, nil
}

// appendItems appends the items of list v to out.
func appendItems(out []any, v *exec.Value) []any {
	if l, ok := v.Interface().([]any); ok {
		return append(out, l...)
	}
	for i := 0; i < v.Len(); i++ {
		out = append(out, v.Index(i).Interface())
	}
	return out
}

// ---------------------------------------------------------------------------
// Python str() and repr()

func pyTypeName(v *exec.Value) string {
	switch {
	case v == nil || v.IsNil():
		return "NoneType"
	case v.IsBool():
		return "bool"
	case v.IsInteger():
		return "int"
	case v.IsFloat():
		return "float"
	case v.IsString():
		return "str"
	case v.IsList():
		return "list"
	case v.IsDict():
		return "dict"
	case v.IsCallable():
		return "function"
	}
	if _, ok := v.Interface().(*namespace); ok {
		return "Namespace"
	}
	return fmt.Sprintf("%T", v.Interface())
}

// pyStr formats v like Python's str(); None and undefined give "".
func pyStr(v *exec.Value) string {
	switch {
	case v == nil || v.IsNil():
		return ""
	case v.IsString():
		return v.String()
	case v.IsBool():
		if v.Bool() {
			return "True"
		}
		return "False"
	case v.IsInteger():
		return strconv.Itoa(v.Integer())
	case v.IsFloat():
		return pyFloatRepr(v.Float())
	case v.IsList(), v.IsDict():
		return pyRepr(v)
	}
	if _, ok := v.Interface().(*namespace); ok {
		return pyRepr(v)
	}
	return v.String()
}

// pyRepr formats v like Python's repr().
func pyRepr(v *exec.Value) string {
	var b strings.Builder
	reprTo(&b, v, map[any]bool{}, 0)
	return b.String()
}

func reprTo(b *strings.Builder, v *exec.Value, seen map[any]bool, depth int) {
	if b.Len() > maxValueLen || depth > maxConvertDepth {
		b.WriteString("...")
		return
	}
	if v == nil || v.IsNil() {
		b.WriteString("None")
		return
	}
	if ns, ok := v.Interface().(*namespace); ok {
		if seen[ns] {
			b.WriteString("<Namespace ...>")
			return
		}
		seen[ns] = true
		defer delete(seen, ns)
		b.WriteString("<Namespace {")
		for i, k := range ns.keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStrRepr(k))
			b.WriteString(": ")
			reprTo(b, ns.vals[k], seen, depth+1)
		}
		b.WriteString("}>")
		return
	}
	switch {
	case v.IsString():
		b.WriteString(pyStrRepr(v.String()))
	case v.IsList():
		b.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b.WriteString(", ")
			}
			reprTo(b, v.Index(i), seen, depth+1)
		}
		b.WriteByte(']')
	case v.IsDict():
		b.WriteByte('{')
		for i, p := range dictPairs(v) {
			if i > 0 {
				b.WriteString(", ")
			}
			reprTo(b, p.Key, seen, depth+1)
			b.WriteString(": ")
			reprTo(b, p.Value, seen, depth+1)
		}
		b.WriteByte('}')
	default:
		b.WriteString(pyStr(v))
	}
}

// pyStrRepr quotes s like Python's repr(str).
func pyStrRepr(s string) string {
	q := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var b strings.Builder
	b.WriteRune(q)
	for _, r := range s {
		switch {
		case r == q || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x7f || unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteRune(q)
	return b.String()
}

// ---------------------------------------------------------------------------
// Tests

func tests() *exec.TestSet {
	set := exec.NewTestSet(map[string]exec.TestFunction{})
	set.Update(builtins.Tests)
	replace := map[string]exec.TestFunction{
		"string": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsString(), nil },
		"number": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsNumber() || in.IsBool(), nil
		},
		"integer": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsInteger(), nil },
		"float":   func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsFloat(), nil },
		"boolean": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsBool(), nil },
		"true": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsBool() && in.Bool(), nil
		},
		"false": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsBool() && !in.Bool(), nil
		},
		"mapping": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsDict(), nil },
		"sequence": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsList() || in.IsString() || in.IsDict(), nil
		},
		"iterable": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) {
			return in.IsList() || in.IsString() || in.IsDict(), nil
		},
		"none": func(_ *exec.Context, in *exec.Value, _ *exec.VarArgs) (bool, error) { return in.IsNil(), nil },
	}
	for name, f := range replace {
		if set.Exists(name) {
			mustRegister(set.Replace(name, f))
		} else {
			mustRegister(set.Register(name, f))
		}
	}
	return set
}

// ---------------------------------------------------------------------------
// Methods

var strMethodNames = []string{
	"capitalize", "capwords", "casefold", "center", "count", "encode", "endswith", "expandtabs",
	"find", "format", "format_map", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
	"islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust",
	"lower", "lstrip", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rjust",
	"rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase",
	"title", "upper", "zfill",
}

func unsafeMethod[T any](typ, name string) exec.Method[T] {
	return func(T, *exec.Value, *exec.VarArgs) (any, error) {
		return nil, fmt.Errorf("access to attribute '%s' of '%s' object is unsafe", name, typ)
	}
}

func methods() exec.Methods {
	strs := map[string]exec.Method[string]{}
	for _, name := range strMethodNames {
		m, ok := builtins.Methods.Str.Get(name)
		if !ok {
			continue
		}
		strs[name] = func(self string, sv *exec.Value, va *exec.VarArgs) (any, error) {
			if err := checkSizeArgs(name, sv, va.Args, va.KwArgs); err != nil {
				return nil, err
			}
			out, err := m(self, sv, va)
			if s, ok := out.(string); ok && len(s) > maxValueLen {
				return nil, fmt.Errorf("%w: %s() result too large", errValueTooLarge, name)
			}
			return out, err
		}
	}

	strs["strip"] = stripFunc("strip", true, true)
	strs["lstrip"] = stripFunc("lstrip", true, false)
	strs["rstrip"] = stripFunc("rstrip", false, true)
	strs["split"] = strSplit
	strs["rsplit"] = strRSplit
	strs["replace"] = strReplace
	strs["count"] = strCount
	strs["center"] = padFunc("center")
	strs["ljust"] = padFunc("ljust")
	strs["rjust"] = padFunc("rjust")
	strs["zfill"] = strZfill

	dicts := map[string]exec.Method[map[string]any]{
		"keys": func(_ map[string]any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			out := []any{}
			for _, p := range dictPairs(sv) {
				out = append(out, p.Key.Interface())
			}
			return out, nil
		},
		"values": func(_ map[string]any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			out := []any{}
			for _, p := range dictPairs(sv) {
				out = append(out, p.Value.Interface())
			}
			return out, nil
		},
		"items": func(_ map[string]any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			return itemsList(sv), nil
		},
		"get": func(_ map[string]any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			if len(va.Args) < 1 || len(va.Args) > 2 || len(va.KwArgs) > 0 {
				return nil, fmt.Errorf("get() takes 1 or 2 positional arguments")
			}
			for _, p := range dictPairs(sv) {
				if p.Key.EqualValueTo(va.Args[0]) {
					return p.Value.Interface(), nil
				}
			}
			if len(va.Args) == 2 {
				return va.Args[1].Interface(), nil
			}
			return nil, nil
		},
		"copy": func(_ map[string]any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			d := &exec.Dict{}
			for _, p := range dictPairs(sv) {
				d.Pairs = append(d.Pairs, &exec.Pair{Key: p.Key, Value: p.Value})
			}
			return d, nil
		},
	}
	for _, name := range []string{"pop", "popitem", "setdefault", "update", "clear"} {
		dicts[name] = unsafeMethod[map[string]any]("dict", name)
	}

	lists := map[string]exec.Method[[]any]{
		"copy": func(self []any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			return append([]any(nil), self...), nil
		},
		"count": func(_ []any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			if len(va.Args) != 1 {
				return nil, fmt.Errorf("count() takes exactly one argument")
			}
			n := 0
			for i := 0; i < sv.Len(); i++ {
				if sv.Index(i).EqualValueTo(va.Args[0]) {
					n++
				}
			}
			return n, nil
		},
		"index": func(_ []any, sv *exec.Value, va *exec.VarArgs) (any, error) {
			if len(va.Args) != 1 {
				return nil, fmt.Errorf("index() takes exactly one argument")
			}
			for i := 0; i < sv.Len(); i++ {
				if sv.Index(i).EqualValueTo(va.Args[0]) {
					return i, nil
				}
			}
			return nil, fmt.Errorf("%s is not in list", pyRepr(va.Args[0]))
		},
	}
	for _, name := range []string{"append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear"} {
		lists[name] = unsafeMethod[[]any]("list", name)
	}

	return exec.Methods{
		Bool:  builtins.Methods.Bool,
		Int:   builtins.Methods.Int,
		Float: builtins.Methods.Float,
		Str:   exec.NewMethodSet(strs),
		Dict:  exec.NewMethodSet(dicts),
		List:  exec.NewMethodSet(lists),
	}
}
