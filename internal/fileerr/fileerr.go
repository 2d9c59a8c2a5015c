// Package fileerr describes what is wrong with a file without echoing its
// bytes: files can be named over the API (a persona's mask, adapter or
// model inside the persona root), and an error that quotes a file's
// content would let a caller read files it should only be able to use.
package fileerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// JSON describes a JSON decoding error by position and kind, without the
// characters encoding/json quotes ("invalid character 'x' …") or the Go
// type names it names.
func JSON(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	case errors.As(err, &te):
		where := "a value"
		if te.Field != "" {
			where = fmt.Sprintf("%q", te.Field)
		}
		return fmt.Sprintf("%s is a JSON %s where %s is expected (at byte %d)", where, te.Value, Kind(te.Type), te.Offset)
	}
	return "malformed JSON"
}

// Kind names what a Go type holds in JSON's terms ("a number", "a list",
// "an object"), for errors that must not name Go types.
func Kind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return Kind(t.Elem())
	}
	return "another type"
}
