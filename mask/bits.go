package mask

import "fmt"

// Bits is a bit-packed 0/1 matrix of Rows×Cols entries: the keep-mask of one
// weight matrix (1 keeps the weight, 0 prunes it). Rows are stored one after
// another, each padded to whole bytes (Stride bytes a row); within a row,
// column c is bit c%8 (least significant first) of byte c/8. Padding bits are
// zero.
type Bits struct {
	Rows, Cols int
	Data       []byte // Rows × Stride bytes
}

// Stride returns the number of bytes one row occupies: ceil(Cols/8).
func (b *Bits) Stride() int { return (b.Cols + 7) / 8 }

// NewBits returns a rows×cols mask with every entry set to keep.
func NewBits(rows, cols int) *Bits {
	b := &Bits{Rows: rows, Cols: cols, Data: make([]byte, rows*((cols+7)/8))}
	b.Fill(true)
	return b
}

// Fill sets every entry to v (padding bits stay zero).
func (b *Bits) Fill(v bool) {
	s := b.Stride()
	for r := 0; r < b.Rows; r++ {
		row := b.Data[r*s : (r+1)*s]
		for i := range row {
			if v {
				row[i] = 0xff
			} else {
				row[i] = 0
			}
		}
		if v && b.Cols%8 != 0 {
			row[s-1] = byte(1<<(b.Cols%8)) - 1
		}
	}
}

// Get reports whether entry (r, c) is kept.
func (b *Bits) Get(r, c int) bool {
	return b.Data[r*b.Stride()+c>>3]>>(c&7)&1 != 0
}

// Set sets entry (r, c) to keep (true) or prune (false).
func (b *Bits) Set(r, c int, keep bool) {
	i := r*b.Stride() + c>>3
	if keep {
		b.Data[i] |= 1 << (c & 7)
	} else {
		b.Data[i] &^= 1 << (c & 7)
	}
}

// Row returns the packed bytes of row r (a view, not a copy).
func (b *Bits) Row(r int) []byte {
	s := b.Stride()
	return b.Data[r*s : (r+1)*s]
}

// SetRow sets row r from keep (len Cols).
func (b *Bits) SetRow(r int, keep []bool) {
	row := b.Row(r)
	clear(row)
	for c, k := range keep {
		if k {
			row[c>>3] |= 1 << (c & 7)
		}
	}
}

// RowCount returns the number of kept entries in row r.
func (b *Bits) RowCount(r int) int {
	n := 0
	for _, x := range b.Row(r) {
		n += popcount(x)
	}
	return n
}

// Count returns the number of kept entries.
func (b *Bits) Count() int64 {
	var n int64
	for _, x := range b.Data {
		n += int64(popcount(x))
	}
	return n
}

// Density returns the share of kept entries (1 for an empty matrix).
func (b *Bits) Density() float64 {
	if b.Rows*b.Cols == 0 {
		return 1
	}
	return float64(b.Count()) / float64(b.Rows*b.Cols)
}

// Clone returns a deep copy.
func (b *Bits) Clone() *Bits {
	return &Bits{Rows: b.Rows, Cols: b.Cols, Data: append([]byte(nil), b.Data...)}
}

// Equal reports whether a and b have the same shape and entries.
func (b *Bits) Equal(o *Bits) bool {
	if b.Rows != o.Rows || b.Cols != o.Cols {
		return false
	}
	for i, x := range b.Data {
		if o.Data[i] != x {
			return false
		}
	}
	return true
}

// check validates the length of Data and that padding bits are zero.
func (b *Bits) check() error {
	if b.Rows < 0 || b.Cols < 0 {
		return fmt.Errorf("negative shape %d×%d", b.Rows, b.Cols)
	}
	s := b.Stride()
	if len(b.Data) != b.Rows*s {
		return fmt.Errorf("%d×%d mask needs %d bytes, has %d", b.Rows, b.Cols, b.Rows*s, len(b.Data))
	}
	if b.Cols%8 != 0 {
		pad := ^byte(byte(1<<(b.Cols%8)) - 1)
		for r := 0; r < b.Rows; r++ {
			if b.Data[r*s+s-1]&pad != 0 {
				return fmt.Errorf("row %d has padding bits set", r)
			}
		}
	}
	return nil
}

// diffCount returns the number of entries where a and b differ (same shape).
func diffCount(a, b *Bits) int64 {
	var n int64
	for i, x := range a.Data {
		n += int64(popcount(x ^ b.Data[i]))
	}
	return n
}

func popcount(x byte) int {
	x = x - (x>>1)&0x55
	x = x&0x33 + (x>>2)&0x33
	return int((x + x>>4) & 0x0f)
}
