package tokenizer

// lossyUTF8 appends the UTF-8 decoding of b to dst, replacing each maximal invalid
// subpart with U+FFFD (the WHATWG / Unicode "best practice" rule used by
// TextDecoder, Rust's from_utf8_lossy and Python's errors="replace").
//
// When final is false, an incomplete but so-far valid sequence at the end of b is not
// decoded; its bytes are returned as rest so that the caller can retry once more bytes
// arrive. When final is true, rest is always empty.
func lossyUTF8(dst []byte, b []byte, final bool) (out []byte, rest []byte) {
	i := 0
	for i < len(b) {
		c := b[i]
		if c < 0x80 {
			dst = append(dst, c)
			i++
			continue
		}
		need := 0
		lo, hi := byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c >= 0xE0 && c <= 0xEF:
			need = 2
			if c == 0xE0 {
				lo = 0xA0
			} else if c == 0xED {
				hi = 0x9F
			}
		case c >= 0xF0 && c <= 0xF4:
			need = 3
			if c == 0xF0 {
				lo = 0x90
			} else if c == 0xF4 {
				hi = 0x8F
			}
		default:
			dst = append(dst, "\uFFFD"...)
			i++
			continue
		}
		j := i + 1
		k := 0
		for k < need {
			if j >= len(b) {
				if !final {
					return dst, b[i:]
				}
				break
			}
			d := b[j]
			if d < lo || d > hi {
				break
			}
			lo, hi = 0x80, 0xBF
			j++
			k++
		}
		if k == need {
			dst = append(dst, b[i:j]...)
		} else {
			dst = append(dst, "\uFFFD"...)
		}
		i = j
	}
	return dst, nil
}
