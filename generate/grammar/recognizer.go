package grammar

// The recogniser: a stack of frames, one per JSON value being read, fed one
// byte at a time. A frame that cannot take a byte but may end there (a
// number, a literal) is popped and the byte goes to the frame below.

// Frame kinds.
const (
	fValue   = iota // the start of a value of n, after optional whitespace
	fObject         // inside an object
	fArray          // inside an array
	fString         // a string (a value, or a key of a free object)
	fNumber         // a number (integer: n.kind == kindInteger)
	fLiteral        // one of n.lits
	fKey            // a key of a closed object: one of the object's n.keys
)

// Sub-states of objects and arrays.
const (
	sOpen  = iota // before '{' or '['
	sFirst        // after the opening bracket
	sKey          // reading a key (its frame is above)
	sColon        // after a key, before ':'
	sValue        // after a value (its frame was above)
	sComma        // after ','
)

// Sub-states of strings.
const (
	strOpen = iota
	strIn
	strEsc
	strHex // hex digits of \u: count holds how many are left
)

// Sub-states of numbers.
const (
	nStart = iota
	nMinus
	nZero
	nInt
	nDot
	nFrac
	nE
	nESign
	nExp
)

const (
	maxDigits = 18 // digits of one part of a number (integers stay within int64)
	maxExp    = 2  // digits of an exponent (numbers stay within float64)
	maxIndent = 20 // spaces or tabs after a newline
	maxDepth  = 24 // nested frames
)

// frame is one value being read.
type frame struct {
	n     *node
	kind  uint8
	st    uint8
	prop  int16  // object: the property whose value comes next
	used  uint64 // object: properties already written
	count int32  // array: items; string: characters (or hex left); number: digits of the part
	// literal or key: the candidates lits/keys[lo:hi] match the pos bytes read
	lo, hi, pos int32
	key         bool // string: an object's key
}

// state is the recogniser's state.
type state struct {
	stack []frame
	// ws is the whitespace just read, as llama.cpp's JSON grammar allows
	// it between tokens: nothing (0), one space (wsSpace), or a newline
	// followed by up to maxIndent spaces or tabs (wsNewline + their count).
	ws int
}

const (
	wsSpace   = 1
	wsNewline = 2
)

func newState(root *node) state {
	return state{stack: []frame{{n: root, kind: fValue}}}
}

// copyFrom makes s a copy of o, reusing s's memory.
func (s *state) copyFrom(o *state) {
	s.stack = append(s.stack[:0], o.stack...)
	s.ws = o.ws
}

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// complete reports whether the bytes read form a whole document.
func (s *state) complete() bool {
	switch len(s.stack) {
	case 0:
		return true
	case 1:
		return s.stack[0].canEnd()
	}
	return false
}

// canEnd reports whether a number or literal frame may end here.
func (f *frame) canEnd() bool {
	switch f.kind {
	case fNumber:
		return f.st == nZero || f.st == nInt || f.st == nFrac || f.st == nExp
	case fLiteral:
		return f.pos > 0 && int(f.pos) == len(f.n.lits[f.lo])
	}
	return false
}

// step results.
const (
	stepReject = iota
	stepOK
	stepRetry // the stack changed without consuming c: feed c again
)

// feed reads one byte; false when it cannot continue a valid document
// (then s is left in an unspecified state).
func (s *state) feed(c byte) bool {
	for {
		if len(s.stack) == 0 {
			return false // the document is complete: nothing may follow
		}
		switch s.step(c) {
		case stepReject:
			return false
		case stepOK:
			if !isWS(c) {
				s.ws = 0
			}
			return true
		}
	}
}

// space takes c as whitespace where whitespace is allowed: " ", or "\n"
// and then up to maxIndent spaces or tabs. None comes before the document.
func (s *state) space(c byte) bool {
	if len(s.stack) == 1 && s.stack[0].kind == fValue {
		return false
	}
	switch {
	case s.ws == 0 && c == ' ':
		s.ws = wsSpace
	case s.ws == 0 && c == '\n':
		s.ws = wsNewline
	case s.ws >= wsNewline && s.ws < wsNewline+maxIndent && (c == ' ' || c == '\t'):
		s.ws++
	default:
		return false
	}
	return true
}

func (s *state) pop() { s.stack = s.stack[:len(s.stack)-1] }

func (s *state) push(f frame) int {
	if len(s.stack) >= maxDepth {
		return stepReject
	}
	s.stack = append(s.stack, f)
	return stepRetry
}

// step feeds c to the top frame.
func (s *state) step(c byte) int {
	f := &s.stack[len(s.stack)-1]
	switch f.kind {
	case fValue:
		if isWS(c) {
			if s.space(c) {
				return stepOK
			}
			return stepReject
		}
		n := pick(f.n, c)
		if n == nil {
			return stepReject
		}
		*f = start(n)
		return stepRetry
	case fObject:
		return s.object(f, c)
	case fArray:
		return s.array(f, c)
	case fString:
		return s.str(f, c)
	case fNumber:
		return s.number(f, c)
	case fLiteral:
		lo, hi := narrow(f.n.lits, f.lo, f.hi, f.pos, c)
		if lo == hi {
			if f.canEnd() {
				s.pop()
				return stepRetry
			}
			return stepReject
		}
		f.lo, f.hi, f.pos = lo, hi, f.pos+1
		return stepOK
	case fKey:
		obj := &s.stack[len(s.stack)-2]
		lo, hi := narrow(obj.n.keys, f.lo, f.hi, f.pos, c)
		for lo < hi && obj.used&(1<<uint(obj.n.keyProp[lo])) != 0 {
			lo++ // drop used keys at the edges (a used key inside the range is checked below)
		}
		for hi > lo && obj.used&(1<<uint(obj.n.keyProp[hi-1])) != 0 {
			hi--
		}
		if lo == hi {
			return stepReject
		}
		f.lo, f.hi, f.pos = lo, hi, f.pos+1
		if int(f.pos) == len(obj.n.keys[lo]) { // the closing quote: keys are prefix-free
			obj.prop = int16(obj.n.keyProp[lo])
			obj.used |= 1 << uint(obj.prop)
			s.pop()
		}
		return stepOK
	}
	return stepReject
}

// narrow returns the range of cands[lo:hi] (sorted, all sharing their
// first pos bytes) whose byte pos is c.
func narrow(cands []string, lo, hi, pos int32, c byte) (int32, int32) {
	a := lo
	for a < hi && (len(cands[a]) <= int(pos) || cands[a][pos] < c) {
		a++
	}
	b := a
	for b < hi && len(cands[b]) > int(pos) && cands[b][pos] == c {
		b++
	}
	return a, b
}

// anyObject and anyArray are the containers of an untyped value.
var (
	anyObject = &node{kind: kindObject, free: true, maxItems: -1, maxLen: -1}
	anyArray  = &node{kind: kindArray, items: anyNode, maxItems: -1, maxLen: -1}
	anyString = &node{kind: kindString, maxItems: -1, maxLen: -1}
	anyNumber = &node{kind: kindNumber}
	boolLits  = &node{kind: kindLiteral, lits: []string{"false", "true"}}
	nullLits  = &node{kind: kindLiteral, lits: []string{"null"}}
)

// pick returns the concrete schema of n for a value starting with c, or nil.
func pick(n *node, c byte) *node { return pickIn(n, c, 0) }

func pickIn(n *node, c byte, depth int) *node {
	if depth > maxSchemaDepth {
		return nil // a union that contains itself
	}
	switch n.kind {
	case kindAny:
		switch {
		case c == '{':
			return anyObject
		case c == '[':
			return anyArray
		case c == '"':
			return anyString
		case c == '-' || (c >= '0' && c <= '9'):
			return anyNumber
		case c == 't' || c == 'f':
			return boolLits
		case c == 'n':
			return nullLits
		}
		return nil
	case kindUnion:
		for _, a := range n.alts {
			if p := pickIn(a, c, depth+1); p != nil {
				return p
			}
		}
		return nil
	case kindObject:
		return when(c == '{', n)
	case kindArray:
		return when(c == '[', n)
	case kindString:
		return when(c == '"', n)
	case kindNumber, kindInteger:
		return when(c == '-' || (c >= '0' && c <= '9'), n)
	case kindBool:
		return when(c == 't' || c == 'f', boolLits)
	case kindNull:
		return when(c == 'n', nullLits)
	case kindLiteral:
		lo, hi := narrow(n.lits, 0, int32(len(n.lits)), 0, c)
		return when(lo < hi, n)
	}
	return nil
}

func when(ok bool, n *node) *node {
	if ok {
		return n
	}
	return nil
}

// start is the frame of a concrete schema, before its first byte.
func start(n *node) frame {
	switch n.kind {
	case kindObject:
		return frame{n: n, kind: fObject, prop: -1}
	case kindArray:
		return frame{n: n, kind: fArray}
	case kindString:
		return frame{n: n, kind: fString}
	case kindNumber, kindInteger:
		return frame{n: n, kind: fNumber}
	}
	return frame{n: n, kind: fLiteral, hi: int32(len(n.lits))}
}

// moreKeys reports whether an object frame can take another key.
func (f *frame) moreKeys() bool {
	if f.n.free {
		return true
	}
	all := uint64(1)<<uint(len(f.n.props)) - 1
	if len(f.n.props) == 64 {
		all = ^uint64(0)
	}
	return f.used&all != all
}

// canClose reports whether an object frame has every required property.
func (f *frame) canClose() bool { return f.used&f.n.required == f.n.required }

func (s *state) object(f *frame, c byte) int {
	switch f.st {
	case sOpen:
		if c != '{' {
			return stepReject
		}
		f.st = sFirst
		return stepOK
	case sFirst, sComma:
		if s.space(c) {
			return stepOK
		}
		if c == '}' && f.st == sFirst && f.canClose() {
			s.pop()
			return stepOK
		}
		if c != '"' || !f.moreKeys() {
			return stepReject
		}
		f.st = sColon
		if f.n.free {
			return s.push(frame{n: anyString, kind: fString, key: true})
		}
		return s.push(frame{kind: fKey, hi: int32(len(f.n.keys))})
	case sColon:
		if s.space(c) {
			return stepOK
		}
		if c != ':' {
			return stepReject
		}
		f.st = sValue
		v := anyNode
		if !f.n.free {
			v = f.n.props[f.prop]
		}
		if s.push(frame{n: v, kind: fValue}) == stepReject {
			return stepReject
		}
		return stepOK
	case sValue:
		if s.space(c) {
			return stepOK
		}
		switch {
		case c == ',' && f.moreKeys():
			f.st = sComma
			return stepOK
		case c == '}' && f.canClose():
			s.pop()
			return stepOK
		}
	}
	return stepReject
}

func (s *state) array(f *frame, c byte) int {
	switch f.st {
	case sOpen:
		if c != '[' {
			return stepReject
		}
		f.st = sFirst
		return stepOK
	case sFirst, sComma:
		if s.space(c) {
			return stepOK
		}
		if c == ']' && f.st == sFirst && f.n.minItems == 0 {
			s.pop()
			return stepOK
		}
		if f.n.maxItems >= 0 && int(f.count) >= f.n.maxItems {
			return stepReject
		}
		f.count++
		f.st = sValue
		return s.push(frame{n: f.n.items, kind: fValue})
	case sValue:
		if s.space(c) {
			return stepOK
		}
		switch {
		case c == ',' && (f.n.maxItems < 0 || int(f.count) < f.n.maxItems):
			f.st = sComma
			return stepOK
		case c == ']' && int(f.count) >= f.n.minItems:
			s.pop()
			return stepOK
		}
	}
	return stepReject
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func (s *state) str(f *frame, c byte) int {
	switch f.st {
	case strOpen:
		if c != '"' {
			return stepReject
		}
		f.st = strIn
		return stepOK
	case strIn:
		switch {
		case c == '"':
			if int(f.count) < f.n.minLen {
				return stepReject
			}
			s.pop()
			return stepOK
		case c < 0x20:
			return stepReject
		case c&0xC0 == 0x80:
			return stepOK // a continuation byte: tokens are whole characters
		}
		if f.n.maxLen >= 0 && int(f.count) >= f.n.maxLen {
			return stepReject
		}
		f.count++
		if c == '\\' {
			f.st = strEsc
		}
		return stepOK
	case strEsc:
		switch c {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			f.st = strIn
			return stepOK
		case 'u':
			f.st = strHex
			f.pos = 4
			return stepOK
		}
	case strHex:
		if !isHex(c) {
			return stepReject
		}
		f.pos--
		if f.pos == 0 {
			f.st = strIn
		}
		return stepOK
	}
	return stepReject
}

func (s *state) number(f *frame, c byte) int {
	digit := c >= '0' && c <= '9'
	frac := f.n.kind != kindInteger
	next := -1
	switch f.st {
	case nStart:
		switch {
		case c == '-':
			next = nMinus
		case c == '0':
			next = nZero
		case digit:
			next, f.count = nInt, 1
		}
	case nMinus:
		switch {
		case c == '0':
			next = nZero
		case digit:
			next, f.count = nInt, 1
		}
	case nZero, nInt:
		switch {
		case digit && f.st == nInt && f.count < maxDigits:
			next, f.count = nInt, f.count+1
		case c == '.' && frac:
			next = nDot
		case (c == 'e' || c == 'E') && frac:
			next = nE
		}
	case nDot:
		if digit {
			next, f.count = nFrac, 1
		}
	case nFrac:
		switch {
		case digit && f.count < maxDigits:
			next, f.count = nFrac, f.count+1
		case c == 'e' || c == 'E':
			next = nE
		}
	case nE:
		switch {
		case c == '+' || c == '-':
			next = nESign
		case digit:
			next, f.count = nExp, 1
		}
	case nESign:
		if digit {
			next, f.count = nExp, 1
		}
	case nExp:
		if digit && f.count < maxExp {
			next, f.count = nExp, f.count+1
		}
	}
	if next >= 0 {
		f.st = uint8(next)
		return stepOK
	}
	if f.canEnd() {
		s.pop()
		return stepRetry
	}
	return stepReject
}
