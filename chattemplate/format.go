package chattemplate

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// pyPercent implements Python's printf-style `format % args`. A list
// argument supplies the positional values when its length matches the
// number of conversions (Jinja has no separate tuple type); a dict supplies
// %(name)s values. fromFilter is set for the format filter, whose arguments
// are always a tuple.
func pyPercent(format string, arg *exec.Value, fromFilter bool) (string, error) {
	var args []*exec.Value
	var mapping *exec.Value
	nconv := countConversions(format)
	switch {
	case arg.IsDict():
		mapping = arg
		args = []*exec.Value{arg}
	case arg.IsList() && (fromFilter || arg.Len() == nconv):
		for i := 0; i < arg.Len(); i++ {
			args = append(args, arg.Index(i))
		}
	default:
		args = []*exec.Value{arg}
	}
	next := 0
	take := func() (*exec.Value, error) {
		if next >= len(args) {
			return nil, fmt.Errorf("not enough arguments for format string")
		}
		next++
		return args[next-1], nil
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(format) {
			return "", fmt.Errorf("incomplete format")
		}
		var val *exec.Value
		if format[i] == '(' {
			end := strings.IndexByte(format[i:], ')')
			if end < 0 || mapping == nil {
				return "", fmt.Errorf("format requires a mapping")
			}
			key := format[i+1 : i+end]
			found := false
			for _, p := range dictPairs(mapping) {
				if p.Key.String() == key {
					val, found = p.Value, true
				}
			}
			if !found {
				return "", fmt.Errorf("KeyError: %q", key)
			}
			i += end + 1
		}
		flags := ""
		for i < len(format) && strings.IndexByte("-+ #0", format[i]) >= 0 {
			flags += string(format[i])
			i++
		}
		width := ""
		if i < len(format) && format[i] == '*' {
			w, err := take()
			if err != nil {
				return "", err
			}
			width = strconv.Itoa(w.Integer())
			i++
		}
		for i < len(format) && format[i] >= '0' && format[i] <= '9' {
			width += string(format[i])
			i++
		}
		prec := ""
		if i < len(format) && format[i] == '.' {
			prec = "."
			i++
			for i < len(format) && format[i] >= '0' && format[i] <= '9' {
				prec += string(format[i])
				i++
			}
			if prec == "." {
				prec = ".0"
			}
		}
		for i < len(format) && strings.IndexByte("hlL", format[i]) >= 0 {
			i++
		}
		if i >= len(format) {
			return "", fmt.Errorf("incomplete format")
		}
		if w, _ := strconv.Atoi(width); w > maxWidth {
			return "", fmt.Errorf("%w: format width %d", errValueTooLarge, w)
		}
		if p, _ := strconv.Atoi(strings.TrimPrefix(prec, ".")); p > 1000 {
			return "", fmt.Errorf("%w: format precision %d", errValueTooLarge, p)
		}
		conv := format[i]
		if conv == '%' {
			b.WriteByte('%')
			continue
		}
		if val == nil {
			v, err := take()
			if err != nil {
				return "", err
			}
			val = v
		}
		spec := "%" + flags + width + prec
		switch conv {
		case 's':
			b.WriteString(fmt.Sprintf(strings.Replace(spec, "0", "", -1)+"s", pyStr(val)))
		case 'r', 'a':
			b.WriteString(fmt.Sprintf(strings.Replace(spec, "0", "", -1)+"s", pyRepr(val)))
		case 'd', 'i', 'u':
			n, ok := asNum(val)
			if !ok {
				return "", fmt.Errorf("%%%c format: a real number is required, not %s", conv, pyTypeName(val))
			}
			iv := n.i
			if !n.isInt {
				iv = int(n.f)
			}
			b.WriteString(fmt.Sprintf("%"+flags+width+"d", iv))
		case 'x', 'X', 'o':
			n, ok := asNum(val)
			if !ok || !n.isInt {
				return "", fmt.Errorf("%%%c format: an integer is required, not %s", conv, pyTypeName(val))
			}
			b.WriteString(fmt.Sprintf("%"+flags+width+string(conv), n.i))
		case 'f', 'F', 'e', 'E', 'g', 'G':
			n, ok := asNum(val)
			if !ok {
				return "", fmt.Errorf("must be real number, not %s", pyTypeName(val))
			}
			if prec == "" {
				spec += ".6"
			}
			b.WriteString(fmt.Sprintf(spec+string(conv), n.f))
		case 'c':
			if n, ok := asNum(val); ok && n.isInt {
				b.WriteString(fmt.Sprintf(strings.Replace(spec, "0", "", -1)+"c", rune(n.i)))
			} else {
				b.WriteString(fmt.Sprintf(strings.Replace(spec, "0", "", -1)+"s", pyStr(val)))
			}
		default:
			return "", fmt.Errorf("unsupported format character '%c'", conv)
		}
		if b.Len() > maxValueLen {
			return "", fmt.Errorf("%w: formatted string", errValueTooLarge)
		}
	}
	if mapping == nil && next < len(args) {
		return "", fmt.Errorf("not all arguments converted during string formatting")
	}
	return b.String(), nil
}

func countConversions(format string) int {
	n := 0
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		if i < len(format) && format[i] == '%' {
			continue
		}
		n++
		for i < len(format) && strings.IndexByte("-+ #0123456789.hlL", format[i]) >= 0 {
			i++
		}
		if i < len(format) && format[i] == '*' {
			n++
		}
	}
	return n
}

var (
	weekdays = []string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	months   = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

// pyStrftime formats t like Python's datetime.strftime (C locale). Besides
// the standard directives it accepts the glibc forms %-d, %-m, %-H, %-I,
// %-M, %-S, %-j and %e.
func pyStrftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		i++
		pad := true
		if format[i] == '-' && i+1 < len(format) {
			pad = false
			i++
		}
		num := func(v, width int) {
			if pad {
				fmt.Fprintf(&b, "%0*d", width, v)
			} else {
				b.WriteString(strconv.Itoa(v))
			}
		}
		hour12 := t.Hour() % 12
		if hour12 == 0 {
			hour12 = 12
		}
		switch format[i] {
		case 'a':
			b.WriteString(weekdays[t.Weekday()][:3])
		case 'A':
			b.WriteString(weekdays[t.Weekday()])
		case 'w':
			b.WriteString(strconv.Itoa(int(t.Weekday())))
		case 'd':
			num(t.Day(), 2)
		case 'e':
			fmt.Fprintf(&b, "%2d", t.Day())
		case 'b', 'h':
			b.WriteString(months[t.Month()-1][:3])
		case 'B':
			b.WriteString(months[t.Month()-1])
		case 'm':
			num(int(t.Month()), 2)
		case 'y':
			num(t.Year()%100, 2)
		case 'Y':
			b.WriteString(strconv.Itoa(t.Year()))
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			num(hour12, 2)
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'M':
			num(t.Minute(), 2)
		case 'S':
			num(t.Second(), 2)
		case 'f':
			fmt.Fprintf(&b, "%06d", t.Nanosecond()/1000)
		case 'z':
			b.WriteString(t.Format("-0700"))
		case 'Z':
			name, _ := t.Zone()
			b.WriteString(name)
		case 'j':
			num(t.YearDay(), 3)
		case 'U':
			num((t.YearDay()+6-int(t.Weekday()))/7, 2)
		case 'W':
			num((t.YearDay()+6-(int(t.Weekday())+6)%7)/7, 2)
		case 'c':
			b.WriteString(t.Format("Mon Jan _2 15:04:05 2006"))
		case 'x':
			b.WriteString(t.Format("01/02/06"))
		case 'X':
			b.WriteString(t.Format("15:04:05"))
		case 'D':
			b.WriteString(t.Format("01/02/06"))
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			if !pad {
				b.WriteByte('-')
			}
			b.WriteByte(format[i])
		}
	}
	return b.String()
}
