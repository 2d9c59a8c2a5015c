package cli

import (
	"fmt"
	"math"
	"strconv"

	"github.com/spf13/pflag"
)

// lrFlag is a learning-rate flag: the value given must be a positive
// number. Leaving the flag out takes the command's default; 0 is refused
// rather than silently meaning that default.
type lrFlag struct{ p *float64 }

// lrVar registers an --lr-style flag storing into p (its current value is
// the default shown; 0 shows none, for a default chosen later).
func lrVar(fl *pflag.FlagSet, p *float64, name, usage string) {
	fl.Var(lrFlag{p}, name, usage)
}

func (f lrFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*f.p, 'g', -1, 64)
}

func (f lrFlag) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return fmt.Errorf("not a number")
	case !(v > 0) || math.IsInf(v, 0):
		return fmt.Errorf("a learning rate must be positive (leave the flag out for the default)")
	}
	*f.p = v
	return nil
}

func (lrFlag) Type() string { return "float" }
