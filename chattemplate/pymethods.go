package chattemplate

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Python semantics for the string methods, filters and item access where
// gonja's own implementations differ from Python.

func pyIsSpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

func stripFunc(name string, left, right bool) exec.Method[string] {
	return func(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		args, err := bindArgs(name, va, "chars")
		if err != nil {
			return nil, err
		}
		pred := pyIsSpace
		if c, ok := args["chars"]; ok && !c.IsNil() {
			if !c.IsString() {
				return nil, fmt.Errorf("%s arg must be None or str", name)
			}
			chars := c.String()
			pred = func(r rune) bool { return strings.ContainsRune(chars, r) }
		}
		if left {
			self = strings.TrimLeftFunc(self, pred)
		}
		if right {
			self = strings.TrimRightFunc(self, pred)
		}
		return self, nil
	}
}

func splitArgs(name string, va *exec.VarArgs) (sep string, whitespace bool, maxsplit int, err error) {
	args, err := bindArgs(name, va, "sep", "maxsplit")
	if err != nil {
		return "", false, 0, err
	}
	whitespace, maxsplit = true, -1
	if s, ok := args["sep"]; ok && !s.IsNil() {
		if !s.IsString() {
			return "", false, 0, fmt.Errorf("must be str or None, not %s", pyTypeName(s))
		}
		sep, whitespace = s.String(), false
		if sep == "" {
			return "", false, 0, fmt.Errorf("empty separator")
		}
	}
	if m, ok := args["maxsplit"]; ok {
		n, ok := intArg(m)
		if !ok {
			return "", false, 0, fmt.Errorf("maxsplit must be an integer")
		}
		maxsplit = n
	}
	return sep, whitespace, maxsplit, nil
}

func strSplit(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	sep, ws, maxsplit, err := splitArgs("split", va)
	if err != nil {
		return nil, err
	}
	out := []any{}
	if !ws {
		var parts []string
		if maxsplit < 0 {
			parts = strings.Split(self, sep)
		} else {
			parts = strings.SplitN(self, sep, maxsplit+1)
		}
		for _, p := range parts {
			out = append(out, p)
		}
		return out, nil
	}
	i := 0
	for {
		for i < len(self) {
			r, n := utf8.DecodeRuneInString(self[i:])
			if !pyIsSpace(r) {
				break
			}
			i += n
		}
		if i >= len(self) {
			break
		}
		if maxsplit >= 0 && len(out) == maxsplit {
			out = append(out, self[i:])
			break
		}
		j := i
		for j < len(self) {
			r, n := utf8.DecodeRuneInString(self[j:])
			if pyIsSpace(r) {
				break
			}
			j += n
		}
		out = append(out, self[i:j])
		i = j
	}
	return out, nil
}

func strRSplit(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	sep, ws, maxsplit, err := splitArgs("rsplit", va)
	if err != nil {
		return nil, err
	}
	var rev []string
	if !ws {
		rest := self
		for maxsplit < 0 || len(rev) < maxsplit {
			k := strings.LastIndex(rest, sep)
			if k < 0 {
				break
			}
			rev = append(rev, rest[k+len(sep):])
			rest = rest[:k]
		}
		rev = append(rev, rest)
	} else {
		j := len(self)
		for {
			for j > 0 {
				r, n := utf8.DecodeLastRuneInString(self[:j])
				if !pyIsSpace(r) {
					break
				}
				j -= n
			}
			if j <= 0 {
				break
			}
			if maxsplit >= 0 && len(rev) == maxsplit {
				rev = append(rev, self[:j])
				break
			}
			i := j
			for i > 0 {
				r, n := utf8.DecodeLastRuneInString(self[:i])
				if pyIsSpace(r) {
					break
				}
				i -= n
			}
			rev = append(rev, self[i:j])
			j = i
		}
	}
	out := make([]any, len(rev))
	for i, p := range rev {
		out[len(rev)-1-i] = p
	}
	return out, nil
}

func strReplace(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	args, err := bindArgs("replace", va, "old", "new", "count")
	if err != nil {
		return nil, err
	}
	o, ok1 := args["old"]
	n, ok2 := args["new"]
	if !ok1 || !ok2 || !o.IsString() || !n.IsString() {
		return nil, fmt.Errorf("replace() takes two string arguments")
	}
	count := -1
	if c, ok := args["count"]; ok {
		if count, ok = intArg(c); !ok {
			return nil, fmt.Errorf("replace() count must be an integer")
		}
	}
	old, repl := o.String(), n.String()
	k := strings.Count(self, old)
	if count >= 0 && count < k {
		k = count
	}
	if int64(len(self))+int64(k)*int64(len(repl)) > maxValueLen {
		return nil, fmt.Errorf("%w: replace() result too large", errValueTooLarge)
	}
	return strings.Replace(self, old, repl, count), nil
}

// ---------------------------------------------------------------------------
// Item access

// filterGetItem implements obj[key] like Jinja2's sandboxed getitem: lists
// and strings by (negative) index, dicts by key, then attributes; a missing
// item is undefined.
func filterGetItem(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if len(va.Args) != 1 {
		return exec.AsValue(fmt.Errorf("subscript needs one key"))
	}
	key := va.Args[0]
	if key.IsError() {
		return key
	}
	if in.IsNil() {
		return exec.AsValue(fmt.Errorf("cannot get item %s of an undefined or None value", pyRepr(key)))
	}
	idx, isIdx := intArg(key)
	switch {
	case in.IsString():
		if !isIdx {
			break
		}
		s := in.String()
		if idx < 0 {
			idx += utf8.RuneCountInString(s)
		}
		if idx < 0 {
			return exec.AsValue(nil)
		}
		for _, r := range s {
			if idx == 0 {
				return exec.AsValue(string(r))
			}
			idx--
		}
		return exec.AsValue(nil)
	case in.IsList():
		if !isIdx {
			break
		}
		n := in.Len()
		if idx < 0 {
			idx += n
		}
		if idx < 0 || idx >= n {
			return exec.AsValue(nil)
		}
		return in.Index(idx)
	case in.IsDict():
		for _, p := range dictPairs(in) {
			if p.Key.EqualValueTo(key) && p.Key.IsString() == key.IsString() {
				return p.Value
			}
		}
		return exec.AsValue(nil)
	}
	if key.IsString() {
		if v, ok := in.Get(key.String()); ok && !v.IsError() {
			return v
		}
	}
	return exec.AsValue(nil)
}

// ---------------------------------------------------------------------------
// Ordering

// pyCompare orders two values like Python's <, for sorting.
func pyCompare(a, b *exec.Value, caseSensitive bool) (int, error) {
	na, aNum := asNum(a)
	nb, bNum := asNum(b)
	switch {
	case aNum && bNum:
		if na.isInt && nb.isInt {
			return cmpInt(na.i, nb.i), nil
		}
		switch {
		case na.f < nb.f:
			return -1, nil
		case na.f > nb.f:
			return 1, nil
		}
		return 0, nil
	case a.IsString() && b.IsString():
		x, y := a.String(), b.String()
		if !caseSensitive {
			x, y = strings.ToLower(x), strings.ToLower(y)
		}
		return strings.Compare(x, y), nil
	case a.IsList() && b.IsList():
		for i := 0; i < a.Len() && i < b.Len(); i++ {
			c, err := pyCompare(a.Index(i), b.Index(i), caseSensitive)
			if err != nil || c != 0 {
				return c, err
			}
		}
		return cmpInt(a.Len(), b.Len()), nil
	}
	return 0, fmt.Errorf("'<' not supported between instances of '%s' and '%s'", pyTypeName(a), pyTypeName(b))
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func sortValues(items []*exec.Value, keyOf func(*exec.Value) *exec.Value, caseSensitive, reverse bool) error {
	var err error
	sort.SliceStable(items, func(i, j int) bool {
		x, y := items[i], items[j]
		if reverse {
			x, y = y, x
		}
		c, cerr := pyCompare(keyOf(x), keyOf(y), caseSensitive)
		if cerr != nil && err == nil {
			err = cerr
		}
		return c < 0
	})
	return err
}

// attrGetter returns a function reading a dotted attribute path ("a.b").
func attrGetter(path string) func(*exec.Value) *exec.Value {
	parts := strings.Split(path, ".")
	return func(v *exec.Value) *exec.Value {
		for _, p := range parts {
			if v.IsNil() {
				return v
			}
			key := exec.AsValue(p)
			if n, err := strconv.Atoi(p); err == nil {
				key = exec.AsValue(n)
			}
			v = filterGetItem(nil, v, &exec.VarArgs{Args: []*exec.Value{key}})
		}
		return v
	}
}

func filterSort(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("sort", va, "reverse", "case_sensitive", "attribute")
	if err != nil {
		return exec.AsValue(err)
	}
	items := iterValues(in)
	if items == nil && !in.IsIterable() {
		return exec.AsValue(fmt.Errorf("sort: '%s' object is not iterable", pyTypeName(in)))
	}
	keyOf := func(v *exec.Value) *exec.Value { return v }
	if a, ok := args["attribute"]; ok && !a.IsNil() {
		var getters []func(*exec.Value) *exec.Value
		for _, p := range strings.Split(a.String(), ",") {
			getters = append(getters, attrGetter(strings.TrimSpace(p)))
		}
		keyOf = func(v *exec.Value) *exec.Value {
			if len(getters) == 1 {
				return getters[0](v)
			}
			k := make([]any, len(getters))
			for i, g := range getters {
				k[i] = g(v).Interface()
			}
			return exec.AsValue(k)
		}
	}
	if err := sortValues(items, keyOf, args["case_sensitive"] != nil && args["case_sensitive"].IsTrue(),
		args["reverse"] != nil && args["reverse"].IsTrue()); err != nil {
		return exec.AsValue(err)
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it.Interface()
	}
	return exec.AsValue(out)
}

func filterDictSort(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("dictsort", va, "case_sensitive", "by", "reverse")
	if err != nil {
		return exec.AsValue(err)
	}
	if !in.IsDict() {
		return exec.AsValue(fmt.Errorf("dictsort: a mapping is required, not %s", pyTypeName(in)))
	}
	pos := 0
	if by, ok := args["by"]; ok {
		switch by.String() {
		case "key":
		case "value":
			pos = 1
		default:
			return exec.AsValue(fmt.Errorf("dictsort: you can only sort by either \"key\" or \"value\""))
		}
	}
	var items []*exec.Value
	for _, p := range dictPairs(in) {
		items = append(items, exec.AsValue([]any{p.Key.Interface(), p.Value.Interface()}))
	}
	keyOf := func(v *exec.Value) *exec.Value { return v.Index(pos) }
	if err := sortValues(items, keyOf, args["case_sensitive"] != nil && args["case_sensitive"].IsTrue(),
		args["reverse"] != nil && args["reverse"].IsTrue()); err != nil {
		return exec.AsValue(err)
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = it.Interface()
	}
	return exec.AsValue(out)
}

func filterReverse(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if in.IsString() {
		r := []rune(in.String())
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return exec.AsValue(string(r))
	}
	items := iterValues(in)
	if items == nil && !in.IsIterable() {
		return exec.AsValue(fmt.Errorf("reverse: '%s' object is not iterable", pyTypeName(in)))
	}
	out := make([]any, len(items))
	for i, it := range items {
		out[len(items)-1-i] = it.Interface()
	}
	return exec.AsValue(out)
}

func filterRound(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("round", va, "precision", "method")
	if err != nil {
		return exec.AsValue(err)
	}
	n, ok := asNum(in)
	if !ok {
		return exec.AsValue(fmt.Errorf("round: a number is required, not %s", pyTypeName(in)))
	}
	prec := 0
	if p, ok := args["precision"]; ok {
		prec, _ = intArg(p)
	}
	if prec > 300 || prec < -300 {
		return exec.AsValue(fmt.Errorf("round: precision out of range"))
	}
	method := "common"
	if m, ok := args["method"]; ok {
		method = m.String()
	}
	f := n.f
	scale := math.Pow(10, float64(prec))
	switch method {
	case "common":
		if prec >= 0 {
			f, _ = strconv.ParseFloat(strconv.FormatFloat(f, 'f', prec, 64), 64)
		} else {
			f = math.RoundToEven(f*scale) / scale
		}
	case "ceil":
		f = math.Ceil(f*scale) / scale
	case "floor":
		f = math.Floor(f*scale) / scale
	default:
		return exec.AsValue(fmt.Errorf("round: method must be common, ceil or floor"))
	}
	return exec.AsValue(f)
}

func strCount(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	args, err := bindArgs("count", va, "sub", "start", "end")
	if err != nil {
		return nil, err
	}
	sub, ok := args["sub"]
	if !ok || !sub.IsString() {
		return nil, fmt.Errorf("count() takes a string argument")
	}
	if _, hasStart := args["start"]; hasStart {
		r := []rune(self)
		lo, hi := 0, len(r)
		if v, ok := intArg(args["start"]); ok {
			lo = v
		}
		if e, ok := args["end"]; ok {
			if v, ok := intArg(e); ok {
				hi = v
			}
		}
		lo, hi = clampSlice(lo, len(r)), clampSlice(hi, len(r))
		if lo > hi {
			return 0, nil
		}
		self = string(r[lo:hi])
	}
	return strings.Count(self, sub.String()), nil
}

func clampSlice(i, n int) int {
	if i < 0 {
		i += n
	}
	return max(0, min(i, n))
}

func padFunc(name string) exec.Method[string] {
	return func(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
		args, err := bindArgs(name, va, "width", "fillchar")
		if err != nil {
			return nil, err
		}
		w, ok := args["width"]
		if !ok {
			return nil, fmt.Errorf("%s() missing required argument 'width'", name)
		}
		width, ok := intArg(w)
		if !ok {
			return nil, fmt.Errorf("%s() width must be an integer", name)
		}
		if width > maxWidth {
			return nil, fmt.Errorf("%w: %s() width %d", errValueTooLarge, name, width)
		}
		fill := " "
		if f, ok := args["fillchar"]; ok {
			if !f.IsString() || utf8.RuneCountInString(f.String()) != 1 {
				return nil, fmt.Errorf("The fill character must be exactly one character long")
			}
			fill = f.String()
		}
		n := utf8.RuneCountInString(self)
		if width <= n {
			return self, nil
		}
		marg := width - n
		switch name {
		case "ljust":
			return self + strings.Repeat(fill, marg), nil
		case "rjust":
			return strings.Repeat(fill, marg) + self, nil
		}
		left := marg/2 + (marg & width & 1)
		return strings.Repeat(fill, left) + self + strings.Repeat(fill, marg-left), nil
	}
}

func strZfill(self string, _ *exec.Value, va *exec.VarArgs) (any, error) {
	if len(va.Args) != 1 {
		return nil, fmt.Errorf("zfill() takes exactly one argument")
	}
	width, ok := intArg(va.Args[0])
	if !ok {
		return nil, fmt.Errorf("zfill() width must be an integer")
	}
	if width > maxWidth {
		return nil, fmt.Errorf("%w: zfill() width %d", errValueTooLarge, width)
	}
	n := utf8.RuneCountInString(self)
	if width <= n {
		return self, nil
	}
	pad := strings.Repeat("0", width-n)
	if self != "" && (self[0] == '+' || self[0] == '-') {
		return self[:1] + pad + self[1:], nil
	}
	return pad + self, nil
}

// filterInt is Jinja's int filter: int(value, default=0, base=10).
func filterInt(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("int", va, "default", "base")
	if err != nil {
		return exec.AsValue(err)
	}
	def := exec.AsValue(0)
	if d, ok := args["default"]; ok {
		def = d
	}
	base := 10
	if b, ok := args["base"]; ok {
		base, _ = intArg(b)
	}
	if n, ok := asNum(in); ok {
		if n.isInt {
			return exec.AsValue(n.i)
		}
		if math.IsNaN(n.f) || math.IsInf(n.f, 0) || math.Abs(n.f) > 9e18 {
			return def
		}
		return exec.AsValue(int(n.f))
	}
	if !in.IsString() {
		return def
	}
	s := strings.TrimSpace(in.String())
	t := strings.ToLower(strings.TrimLeft(s, "+-"))
	if (base == 16 && strings.HasPrefix(t, "0x")) || (base == 8 && strings.HasPrefix(t, "0o")) || (base == 2 && strings.HasPrefix(t, "0b")) {
		neg := strings.HasPrefix(s, "-")
		s = t[2:]
		if neg {
			s = "-" + s
		}
	}
	if base >= 0 && base <= 36 && base != 1 {
		if i, err := strconv.ParseInt(s, base, 64); err == nil {
			return exec.AsValue(int(i))
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 9e18 {
		return exec.AsValue(int(f))
	}
	return def
}

// filterFloat is Jinja's float filter: float(value, default=0.0).
func filterFloat(e *exec.Evaluator, in *exec.Value, va *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	args, err := bindArgs("float", va, "default")
	if err != nil {
		return exec.AsValue(err)
	}
	def := exec.AsValue(0.0)
	if d, ok := args["default"]; ok {
		def = d
	}
	if n, ok := asNum(in); ok {
		return exec.AsValue(n.f)
	}
	if in.IsString() {
		s := strings.ToLower(strings.TrimSpace(in.String()))
		switch strings.TrimLeft(s, "+-") {
		case "inf", "infinity", "nan":
		default:
			if strings.ContainsAny(s, "xp") {
				return def
			}
		}
		if f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64); err == nil {
			return exec.AsValue(f)
		}
	}
	return def
}

// pyEqual compares like Python's ==.
func pyEqual(a, b *exec.Value) bool {
	na, aNum := asNum(a)
	nb, bNum := asNum(b)
	switch {
	case aNum && bNum:
		if na.isInt && nb.isInt {
			return na.i == nb.i
		}
		return na.f == nb.f
	case aNum || bNum:
		return false
	case a.IsNil() || b.IsNil():
		return a.IsNil() && b.IsNil()
	case a.IsString() || b.IsString():
		return a.IsString() && b.IsString() && a.String() == b.String()
	case a.IsList() && b.IsList():
		if a.Len() != b.Len() {
			return false
		}
		for i := 0; i < a.Len(); i++ {
			if !pyEqual(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case a.IsDict() && b.IsDict():
		pa, pb := dictPairs(a), dictPairs(b)
		if len(pa) != len(pb) {
			return false
		}
		for _, p := range pa {
			found := false
			for _, q := range pb {
				if pyEqual(p.Key, q.Key) {
					if !pyEqual(p.Value, q.Value) {
						return false
					}
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
	return a.EqualValueTo(b)
}
