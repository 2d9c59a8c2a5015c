package style

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ScoreRow is one answer to score: the character answering (empty: the
// caller's default), the input it answered and its output. A JSONL file of
// them is what masque style score --batch reads.
type ScoreRow struct {
	Character string `json:"character"`
	Input     string `json:"input"`
	Output    string `json:"output"`
}

// ReadScoreRows reads a JSONL file of ScoreRows (blank lines skipped). A row
// without input or output, a malformed line or an empty file is an error
// naming the file and line.
func ReadScoreRows(path string) ([]ScoreRow, error) {
	var rows []ScoreRow
	err := eachLine(path, func(ln int, line string) error {
		var r ScoreRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s:%d: %v", path, ln, err)
		}
		if strings.TrimSpace(r.Input) == "" || strings.TrimSpace(r.Output) == "" {
			return fmt.Errorf("%s:%d: the row needs non-empty input and output", path, ln)
		}
		rows = append(rows, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no rows", path)
	}
	return rows, nil
}
