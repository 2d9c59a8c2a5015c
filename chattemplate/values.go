package chattemplate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// This file converts Go values into the values templates see, and formats
// template values the way Python does (json.dumps, float repr).
//
// Templates see: nil (None), bool, int, float64, string, []any (list) and
// *exec.Dict (dict, which keeps key order).

// messageDict builds the dict a template sees for one message: role, content,
// then the extra fields in sorted key order.
func messageDict(m Message) *exec.Dict {
	d := &exec.Dict{Pairs: make([]*exec.Pair, 0, 2+len(m.Fields))}
	setDictItem(d, "role", m.Role)
	setDictItem(d, "content", m.Content)
	keys := make([]string, 0, len(m.Fields))
	for k := range m.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, err := convertValue(m.Fields[k], 0)
		if err != nil {
			v = err
		}
		setDictItem(d, k, v)
	}
	return d
}

// setDictItem sets key k of d to the already converted value v, replacing an
// existing value in place (keeping its position) like a Python dict.
func setDictItem(d *exec.Dict, k string, v any) {
	for _, p := range d.Pairs {
		if p.Key.IsString() && p.Key.String() == k {
			p.Value = exec.AsValue(v)
			return
		}
	}
	d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(v)})
}

const maxConvertDepth = 200

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	marshalerType  = reflect.TypeFor[json.Marshaler]()
)

// convertValue turns a Go value into a template value.
//
// Numbers become int or float64; a float64 with an integral value becomes an
// int, because encoding/json decodes every JSON number to float64 and Python
// would have parsed "1" as an int (use json.Number or json.RawMessage to keep
// 1.0 a float). Maps with string keys become dicts with sorted keys;
// json.RawMessage and values implementing json.Marshaler are decoded from
// their JSON keeping key order; structs and other types go through
// encoding/json the same way.
func convertValue(v any, depth int) (any, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("value nested more than %d levels deep", maxConvertDepth)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string, bool, int:
		return x, nil
	case float64:
		return normFloat(x), nil
	case float32:
		return normFloat(float64(x)), nil
	case json.Number:
		return numberFromLiteral(string(x))
	case json.RawMessage:
		return decodeOrdered(x)
	case Message:
		return messageDict(x), nil
	case *exec.Dict, *namespace:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := convertValue(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := &exec.Dict{Pairs: make([]*exec.Pair, 0, len(keys))}
		for _, k := range keys {
			c, err := convertValue(x[k], depth+1)
			if err != nil {
				return nil, err
			}
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k), Value: exec.AsValue(c)})
		}
		return d, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Type().Implements(marshalerType) {
		return viaJSON(v)
	}
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(rv.Int()), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u := rv.Uint()
		if u > math.MaxInt64 {
			return float64(u), nil
		}
		return int(u), nil
	case reflect.Float32, reflect.Float64:
		return normFloat(rv.Float()), nil
	case reflect.String:
		return rv.String(), nil
	case reflect.Bool:
		return rv.Bool(), nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.IsNil() {
			return []any{}, nil
		}
		out := make([]any, rv.Len())
		for i := range out {
			c, err := convertValue(rv.Index(i).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return viaJSON(v)
		}
		if rv.IsNil() {
			return &exec.Dict{}, nil
		}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		d := &exec.Dict{Pairs: make([]*exec.Pair, 0, len(keys))}
		for _, k := range keys {
			c, err := convertValue(rv.MapIndex(k).Interface(), depth+1)
			if err != nil {
				return nil, err
			}
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k.String()), Value: exec.AsValue(c)})
		}
		return d, nil
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil, nil
		}
		return convertValue(rv.Elem().Interface(), depth+1)
	}
	return viaJSON(v)
}

func normFloat(f float64) any {
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 && !(f == 0 && math.Signbit(f)) {
		return int(f)
	}
	return f
}

func viaJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot pass %T to a template: %v", v, err)
	}
	return decodeOrdered(b)
}

func numberFromLiteral(s string) (any, error) {
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return int(i), nil
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("bad JSON number %q", s)
	}
	return f, nil
}

// decodeOrdered decodes JSON into template values, keeping object key order.
// A repeated key keeps its first position and its last value, like Python.
func decodeOrdered(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("bad JSON value: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("bad JSON value: trailing data")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (any, error) {
	if depth > maxConvertDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxConvertDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '[':
			out := []any{}
			for dec.More() {
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				out = append(out, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return out, nil
		case '{':
			d := &exec.Dict{Pairs: []*exec.Pair{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				setDictItem(d, k, e)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return d, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		return numberFromLiteral(string(t))
	default:
		return t, nil // string, bool or nil
	}
}

// ---------------------------------------------------------------------------
// Python formatting

// pyFloatRepr formats f like Python's repr(float).
func pyFloatRepr(f float64) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX, shortest round-trip digits
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	sign := ""
	if neg {
		sign = "-"
	}
	decpt := exp + 1
	if decpt > -4 && decpt <= 16 {
		var out string
		switch {
		case decpt <= 0:
			out = "0." + strings.Repeat("0", -decpt) + digits
		case decpt >= len(digits):
			out = digits + strings.Repeat("0", decpt-len(digits)) + ".0"
		default:
			out = digits[:decpt] + "." + digits[decpt:]
		}
		return sign + out
	}
	m := digits[:1]
	if len(digits) > 1 {
		m += "." + digits[1:]
	}
	es := "+"
	if exp < 0 {
		es = "-"
		exp = -exp
	}
	e := strconv.Itoa(exp)
	if len(e) < 2 {
		e = "0" + e
	}
	return sign + m + "e" + es + e
}

// jsonOptions are the json.dumps keyword arguments tojson accepts.
type jsonOptions struct {
	ensureASCII bool
	indent      string
	hasIndent   bool
	itemSep     string
	keySep      string
	sortKeys    bool
}

type jsonEncoder struct {
	opt   jsonOptions
	buf   strings.Builder
	limit int
	seen  map[uintptr]bool
}

// pyJSONDumps formats v like Python's json.dumps with the given options.
func pyJSONDumps(v any, opt jsonOptions, limit int) (string, error) {
	e := &jsonEncoder{opt: opt, limit: limit, seen: map[uintptr]bool{}}
	if err := e.encode(v, 0); err != nil {
		return "", err
	}
	return e.buf.String(), nil
}

func (e *jsonEncoder) newline(level int) {
	if e.opt.hasIndent {
		e.buf.WriteByte('\n')
		for range level {
			e.buf.WriteString(e.opt.indent)
		}
	}
}

func (e *jsonEncoder) encode(v any, level int) error {
	if e.buf.Len() > e.limit {
		return errValueTooLarge
	}
	if level > maxConvertDepth {
		return fmt.Errorf("tojson: value nested too deeply")
	}
	if val, ok := v.(*exec.Value); ok {
		if val == nil || val.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		v = val.Interface()
	}
	switch x := v.(type) {
	case nil:
		e.buf.WriteString("null")
		return nil
	case bool:
		if x {
			e.buf.WriteString("true")
		} else {
			e.buf.WriteString("false")
		}
		return nil
	case string:
		e.str(x)
		return nil
	case float64:
		e.float(x)
		return nil
	case float32:
		e.float(float64(x))
		return nil
	case *namespace:
		return fmt.Errorf("tojson: Object of type Namespace is not JSON serializable")
	case *exec.Dict:
		return e.dict(x, level)
	case exec.Dict:
		return e.dict(&x, level)
	case error:
		return x
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.buf.WriteString(strconv.FormatInt(rv.Int(), 10))
		return nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.buf.WriteString(strconv.FormatUint(rv.Uint(), 10))
		return nil
	case reflect.String:
		e.str(rv.String())
		return nil
	case reflect.Bool:
		return e.encode(rv.Bool(), level)
	case reflect.Float32, reflect.Float64:
		e.float(rv.Float())
		return nil
	case reflect.Slice, reflect.Array:
		if rv.Kind() == reflect.Slice && rv.Len() > 0 {
			p := rv.Pointer()
			if e.seen[p] {
				return fmt.Errorf("tojson: Circular reference detected")
			}
			e.seen[p] = true
			defer delete(e.seen, p)
		}
		if rv.Len() == 0 {
			e.buf.WriteString("[]")
			return nil
		}
		e.buf.WriteByte('[')
		for i := 0; i < rv.Len(); i++ {
			if i > 0 {
				e.buf.WriteString(e.opt.itemSep)
			}
			e.newline(level + 1)
			if err := e.encode(rv.Index(i).Interface(), level+1); err != nil {
				return err
			}
		}
		e.newline(level)
		e.buf.WriteByte(']')
		return nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("tojson: keys must be strings")
		}
		d := &exec.Dict{}
		keys := rv.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(k.String()), Value: exec.ToValue(rv.MapIndex(k))})
		}
		return e.dict(d, level)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.buf.WriteString("null")
			return nil
		}
		return e.encode(rv.Elem().Interface(), level)
	}
	return fmt.Errorf("tojson: Object of type %T is not JSON serializable", v)
}

func (e *jsonEncoder) dict(d *exec.Dict, level int) error {
	if len(d.Pairs) == 0 {
		e.buf.WriteString("{}")
		return nil
	}
	p := reflect.ValueOf(d).Pointer()
	if e.seen[p] {
		return fmt.Errorf("tojson: Circular reference detected")
	}
	e.seen[p] = true
	defer delete(e.seen, p)
	type kv struct {
		k string
		v *exec.Value
	}
	items := make([]kv, 0, len(d.Pairs))
	for _, pair := range d.Pairs {
		k, err := jsonKey(pair.Key)
		if err != nil {
			return err
		}
		items = append(items, kv{k, pair.Value})
	}
	if e.opt.sortKeys {
		sort.SliceStable(items, func(i, j int) bool { return items[i].k < items[j].k })
	}
	e.buf.WriteByte('{')
	for i, it := range items {
		if i > 0 {
			e.buf.WriteString(e.opt.itemSep)
		}
		e.newline(level + 1)
		e.str(it.k)
		e.buf.WriteString(e.opt.keySep)
		if err := e.encode(it.v, level+1); err != nil {
			return err
		}
	}
	e.newline(level)
	e.buf.WriteByte('}')
	return nil
}

// jsonKey converts a dict key the way json.dumps does.
func jsonKey(k *exec.Value) (string, error) {
	switch {
	case k == nil || k.IsNil():
		return "null", nil
	case k.IsString():
		return k.String(), nil
	case k.IsBool():
		if k.Bool() {
			return "true", nil
		}
		return "false", nil
	case k.IsInteger():
		return strconv.Itoa(k.Integer()), nil
	case k.IsFloat():
		return pyFloatRepr(k.Float()), nil
	}
	return "", fmt.Errorf("tojson: keys must be str, int, float, bool or None")
}

func (e *jsonEncoder) float(f float64) {
	switch {
	case math.IsNaN(f):
		e.buf.WriteString("NaN")
	case math.IsInf(f, 1):
		e.buf.WriteString("Infinity")
	case math.IsInf(f, -1):
		e.buf.WriteString("-Infinity")
	default:
		e.buf.WriteString(pyFloatRepr(f))
	}
}

const hexDigits = "0123456789abcdef"

func (e *jsonEncoder) str(s string) {
	b := &e.buf
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20:
				b.WriteString(`\u00`)
				b.WriteByte(hexDigits[r>>4])
				b.WriteByte(hexDigits[r&0xf])
			case e.opt.ensureASCII && r > 0x7f:
				if r > 0xffff {
					r -= 0x10000
					writeU16(b, 0xd800+(r>>10))
					writeU16(b, 0xdc00+(r&0x3ff))
				} else {
					writeU16(b, r)
				}
			default:
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}

func writeU16(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	for shift := 12; shift >= 0; shift -= 4 {
		b.WriteByte(hexDigits[(r>>shift)&0xf])
	}
}
