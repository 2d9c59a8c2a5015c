package gguf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/masque-ai/masque/quant"
)

// FileType is llama.cpp's whole-file quantisation recipe (LLAMA_FTYPE, the
// general.file_type value): a default tensor type plus per-tensor choices.
type FileType uint32

// The recipes masque writes, with llama.cpp's ids.
const (
	FileTypeF32    FileType = 0
	FileTypeF16    FileType = 1
	FileTypeQ4_0   FileType = 2
	FileTypeQ4_1   FileType = 3
	FileTypeQ8_0   FileType = 7
	FileTypeQ5_0   FileType = 8
	FileTypeQ5_1   FileType = 9
	FileTypeQ2_K   FileType = 10
	FileTypeQ3_K_S FileType = 11
	FileTypeQ3_K_M FileType = 12
	FileTypeQ3_K_L FileType = 13
	FileTypeQ4_K_S FileType = 14
	FileTypeQ4_K_M FileType = 15
	FileTypeQ5_K_S FileType = 16
	FileTypeQ5_K_M FileType = 17
	FileTypeQ6_K   FileType = 18
	FileTypeIQ4_NL FileType = 25
	FileTypeIQ4_XS FileType = 30
	FileTypeBF16   FileType = 32
)

// fileTypes names every recipe masque knows and gives its default tensor
// type (the llama.cpp name, upper case, as llama-quantize prints it).
var fileTypes = map[FileType]struct {
	name string
	def  quant.DType
}{
	FileTypeF32: {"F32", quant.F32}, FileTypeF16: {"F16", quant.F16}, FileTypeBF16: {"BF16", quant.BF16},
	FileTypeQ4_0: {"Q4_0", quant.Q4_0}, FileTypeQ4_1: {"Q4_1", quant.Q4_1}, FileTypeQ8_0: {"Q8_0", quant.Q8_0},
	FileTypeQ5_0: {"Q5_0", quant.Q5_0}, FileTypeQ5_1: {"Q5_1", quant.Q5_1},
	FileTypeQ2_K: {"Q2_K", quant.Q2_K}, FileTypeQ3_K_S: {"Q3_K_S", quant.Q3_K}, FileTypeQ3_K_M: {"Q3_K_M", quant.Q3_K},
	FileTypeQ3_K_L: {"Q3_K_L", quant.Q3_K}, FileTypeQ4_K_S: {"Q4_K_S", quant.Q4_K}, FileTypeQ4_K_M: {"Q4_K_M", quant.Q4_K},
	FileTypeQ5_K_S: {"Q5_K_S", quant.Q5_K}, FileTypeQ5_K_M: {"Q5_K_M", quant.Q5_K}, FileTypeQ6_K: {"Q6_K", quant.Q6_K},
	FileTypeIQ4_NL: {"IQ4_NL", quant.IQ4_NL}, FileTypeIQ4_XS: {"IQ4_XS", quant.IQ4_XS},
}

// String returns llama.cpp's name of the recipe ("Q4_K_M"), or
// "file type N" for one masque does not know.
func (ft FileType) String() string {
	if i, ok := fileTypes[ft]; ok {
		return i.name
	}
	return "file type " + strconv.Itoa(int(ft))
}

// Default returns the recipe's default tensor type.
func (ft FileType) Default() quant.DType { return fileTypes[ft].def }

// ParseFileType accepts llama.cpp's recipe names in any case (Q4_K_M,
// q5_k_s, Q8_0, F16, …) and llama-quantize's aliases Q4_K (= Q4_K_M), Q5_K
// (= Q5_K_M) and Q3_K (= Q3_K_M).
func ParseFileType(s string) (FileType, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	switch u {
	case "Q4_K":
		return FileTypeQ4_K_M, nil
	case "Q5_K":
		return FileTypeQ5_K_M, nil
	case "Q3_K":
		return FileTypeQ3_K_M, nil
	}
	var names []string
	for ft, i := range fileTypes {
		if i.name == u {
			return ft, nil
		}
		if ft.Writable() == nil {
			names = append(names, i.name)
		}
	}
	sort.Strings(names)
	return 0, fmt.Errorf("unknown type %q (want one of %s; Q4_K means Q4_K_M, Q5_K means Q5_K_M)", s, strings.Join(names, ", "))
}

// Writable reports (as an error naming the missing tensor type) whether
// masque can write every tensor type the recipe may choose.
func (ft FileType) Writable() error {
	if _, ok := fileTypes[ft]; !ok {
		return fmt.Errorf("%s is not a recipe masque knows", ft)
	}
	for _, t := range ft.mayUse() {
		if !t.Encodable() {
			return fmt.Errorf("the %s recipe uses %s tensors, which masque reads but does not write", ft, t)
		}
	}
	return nil
}

// mayUse lists the tensor types the recipe can choose (before fallbacks,
// which are all writable).
func (ft FileType) mayUse() []quant.DType {
	d := ft.Default()
	if !d.Quantized() {
		return []quant.DType{d}
	}
	out := []quant.DType{d, quant.Q6_K, quant.Q8_0}
	switch ft {
	case FileTypeQ4_K_S:
		out = append(out, quant.Q5_K)
	case FileTypeQ2_K, FileTypeQ3_K_M, FileTypeQ3_K_L:
		out = append(out, quant.Q3_K, quant.Q4_K, quant.Q5_K)
	case FileTypeIQ4_NL, FileTypeIQ4_XS:
		out = append(out, quant.Q5_K)
	}
	return out
}

// FileTypeOf returns the recipe llama-quantize uses for a plain tensor type
// name: the type's own recipe, with Q4_K and Q5_K meaning Q4_K_M and
// Q5_K_M as in llama-quantize.
func FileTypeOf(t quant.DType) (FileType, error) {
	switch t {
	case quant.Q4_K:
		return FileTypeQ4_K_M, nil
	case quant.Q5_K:
		return FileTypeQ5_K_M, nil
	case quant.Q3_K:
		return FileTypeQ3_K_M, nil
	}
	for ft, i := range fileTypes {
		if i.def == t {
			switch ft {
			case FileTypeQ3_K_S, FileTypeQ3_K_L, FileTypeQ4_K_S, FileTypeQ5_K_S:
				continue
			}
			return ft, nil
		}
	}
	return 0, fmt.Errorf("no llama.cpp recipe stores matrices as %s", t)
}

// PlanTensor is one 2-D weight to place: its GGUF name and shape.
type PlanTensor struct {
	Name       string
	Rows, Cols int
}

// PlanModel is what the recipes need to know of the model.
type PlanModel struct {
	// Layers is the block count; Heads and KVHeads the attention head counts.
	Layers, Heads, KVHeads int
}

// Choice is the type a recipe gives one tensor.
type Choice struct {
	Name       string
	Rows, Cols int
	Type       quant.DType
	// Wanted is the type the recipe wanted before a fallback (equal to
	// Type when there was none): the row length is not a multiple of
	// Wanted's block.
	Wanted quant.DType
}

// Bytes returns the tensor's size in Type.
func (c Choice) Bytes() int {
	rb, _ := c.Type.RowBytes(c.Cols)
	return rb * c.Rows
}

// Plan applies the recipe to a model's 2-D weights: llama.cpp's choices for
// the output (and tied token embedding) matrix, the attention-v and ffn-down
// bumps to Q6_K/Q5_K on the layers its use_more_bits rule picks, and its
// fallbacks for rows a k-quant cannot hold (Q4_K → Q5_0, Q5_K → Q5_1,
// Q6_K → Q8_0, Q2_K/Q3_K/IQ4_XS → IQ4_NL, then F16). Tensors are considered in llama.cpp's order
// (non-layer tensors first, then by layer and name), which fixes which
// attn_v and ffn_down tensors count as the first ones. The result is in
// the order of ts. Where llama.cpp would refuse (rows of a legacy type that
// are not whole blocks) the matrix gets F16, with Wanted saying so.
// Writable says whether masque can also write the plan.
func (ft FileType) Plan(ts []PlanTensor, m PlanModel) ([]Choice, error) {
	if _, ok := fileTypes[ft]; !ok {
		return nil, fmt.Errorf("%s is not a recipe masque knows", ft)
	}
	order := make([]int, len(ts))
	for i := range order {
		order[i] = i
	}
	layerOf := func(name string) int {
		if !strings.HasPrefix(name, "blk.") {
			return -1
		}
		rest := name[4:]
		if j := strings.IndexByte(rest, '.'); j > 0 {
			if n, err := strconv.Atoi(rest[:j]); err == nil {
				return n
			}
		}
		return -1
	}
	sort.SliceStable(order, func(a, b int) bool {
		la, lb := layerOf(ts[order[a]].Name), layerOf(ts[order[b]].Name)
		if la != lb {
			return la < lb
		}
		return ts[order[a]].Name < ts[order[b]].Name
	})
	nAttnV, hasOutput := 0, false
	for _, t := range ts {
		if strings.Contains(t.Name, "attn_v.weight") || strings.Contains(t.Name, "attn_qkv.weight") {
			nAttnV++
		} else if t.Name == "output.weight" {
			hasOutput = true
		}
	}
	moreBits := func(i, n int) bool { return i < n/8 || i >= 7*n/8 || (i-n/8)%3 == 2 }
	gqa := 1
	if m.KVHeads > 0 {
		gqa = m.Heads / m.KVHeads
	}
	var iAttnV, iFFNDown int
	out := make([]Choice, len(ts))
	def := ft.Default()
	for _, i := range order {
		t := ts[i]
		typ := def
		if def.Quantized() {
			name := t.Name
			switch {
			case name == "output.weight" || (!hasOutput && name == "token_embd.weight"):
				if t.Cols%typ.BlockElems() != 0 {
					typ = quant.Q8_0
				} else if typ != quant.Q8_0 {
					typ = quant.Q6_K
				}
			case name == "token_embd.weight":
			case strings.Contains(name, "attn_v.weight"):
				switch {
				case ft == FileTypeQ2_K:
					typ = quant.Q3_K
					if gqa >= 4 {
						typ = quant.Q4_K
					}
				case ft == FileTypeQ3_K_M:
					typ = quant.Q4_K
					if iAttnV < 2 {
						typ = quant.Q5_K
					}
				case ft == FileTypeQ3_K_L:
					typ = quant.Q5_K
				case (ft == FileTypeIQ4_NL || ft == FileTypeIQ4_XS) && gqa >= 4:
					typ = quant.Q5_K
				case (ft == FileTypeQ4_K_M || ft == FileTypeQ5_K_M) && moreBits(iAttnV, nAttnV):
					typ = quant.Q6_K
				case ft == FileTypeQ4_K_S && iAttnV < 4:
					typ = quant.Q5_K
				}
				iAttnV++
			case strings.Contains(name, "ffn_down"):
				il, nl := iFFNDown, m.Layers
				switch {
				case ft == FileTypeQ2_K:
					typ = quant.Q3_K
				case ft == FileTypeQ3_K_M:
					if il < nl/16 {
						typ = quant.Q5_K
					} else {
						typ = quant.Q4_K
					}
				case ft == FileTypeQ3_K_L:
					typ = quant.Q5_K
				case ft == FileTypeQ4_K_M:
					if moreBits(il, nl) {
						typ = quant.Q6_K
					}
				case il < nl/8 && (ft == FileTypeIQ4_NL || ft == FileTypeIQ4_XS):
					typ = quant.Q5_K
				case ft == FileTypeQ5_K_M && moreBits(il, nl):
					typ = quant.Q6_K
				case ft == FileTypeQ4_K_S && il < nl/8:
					typ = quant.Q5_K
				}
				iFFNDown++
			case strings.Contains(name, "attn_output.weight"):
				switch ft {
				case FileTypeQ2_K:
					typ = quant.Q3_K
				case FileTypeQ3_K_M:
					typ = quant.Q4_K
				case FileTypeQ3_K_L:
					typ = quant.Q5_K
				}
			}
		}
		c := Choice{Name: t.Name, Rows: t.Rows, Cols: t.Cols, Type: typ, Wanted: typ}
		if t.Cols%typ.BlockElems() != 0 {
			switch typ {
			case quant.Q4_K:
				c.Type = quant.Q5_0
			case quant.Q5_K:
				c.Type = quant.Q5_1
			case quant.Q6_K:
				c.Type = quant.Q8_0
			case quant.Q2_K, quant.Q3_K, quant.IQ4_XS:
				c.Type = quant.IQ4_NL
			default:
				// llama.cpp refuses the whole file here; masque stores the
				// matrix as F16 (Wanted records what it could not hold).
				c.Type = quant.F16
			}
			if t.Cols%c.Type.BlockElems() != 0 {
				c.Type = quant.F16
			}
		}
		out[i] = c
	}
	return out, nil
}
