package synth

import (
	"context"
	"fmt"
	"strings"
)

// ProfilesConfig configures RunProfiles.
type ProfilesConfig struct {
	Common
	// Personas are the inputs; identical persona texts are done once.
	Personas []Persona
	// Retries is how many more times a malformed or failing profile is
	// asked for, with a new seed (only when Temperature > 0; default 2,
	// < 0: none).
	Retries int
	// Problems are input problems to carry into the summary.
	Problems []Problem
}

// profileRow is a line of the profiles log.
type profileRow struct {
	ID        string   `json:"id"`
	Persona   string   `json:"persona"`
	Character string   `json:"character"`
	Source    string   `json:"source,omitempty"`
	Attempts  int      `json:"attempts"`
	Finish    string   `json:"finish_reason,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

func (r *profileRow) setFlags(f []string) { r.Flags = f }

// cleanOutput trims an output and removes a surrounding markdown code
// fence.
func cleanOutput(s string) string {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "```") {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = strings.TrimSuffix(strings.TrimSpace(s), "```")
	}
	return strings.TrimSpace(s)
}

// NormalizeProfile cleans a generated profile: trims it, removes a code
// fence and any lines before the "Name:" line (titles, preambles).
func NormalizeProfile(s string) string {
	s = cleanOutput(s)
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		t := strings.ToLower(strings.TrimLeft(strings.TrimSpace(l), "-*#• "))
		t = strings.TrimLeft(t, "*_")
		if strings.HasPrefix(t, "name:") || strings.HasPrefix(t, "name**:") {
			return strings.TrimSpace(strings.Join(lines[i:], "\n"))
		}
	}
	return s
}

// RunProfiles expands every persona into a character profile (OpenCharacter
// step 1). Kept rows go to the profiles log; when the run covers the whole
// job, synthetic_character.jsonl (character_id, persona, character) is
// built from it. A profile whose first line is not "Name: ..." or that lacks
// a field is asked for again (Retries), then dropped or flagged as
// malformed_profile.
func RunProfiles(ctx context.Context, cfg ProfilesConfig) (*Summary, error) {
	byID := map[string]Persona{}
	var ids []string
	for _, p := range cfg.Personas {
		id := CharacterID(p.Text)
		if _, ok := byID[id]; !ok {
			byID[id] = p
			ids = append(ids, id)
		}
	}
	retries := cfg.Retries
	if retries == 0 {
		retries = 2
	}
	if retries < 0 || cfg.Temperature <= 0 {
		retries = 0
	}
	settings := cfg.settings()
	settings["stage"] = StageProfiles
	settings["retries"] = fmt.Sprint(retries)
	r, err := openRunner(&cfg.Common, StageProfiles, settings, ids)
	if err != nil {
		return nil, err
	}
	runErr := r.run(ctx, func(ctx context.Context, id string) (outcome, error) {
		p := byID[id]
		row := &profileRow{ID: id, Persona: p.Text, Source: fmt.Sprintf("%s:%d", p.File, p.Line)}
		var reasons []string
		for attempt := 0; attempt <= retries; attempt++ {
			req := cfg.request(ProfileMessages(p.Text), id, attempt, 768)
			resp, err := cfg.Teacher.Complete(ctx, req)
			if err != nil {
				return outcome{}, err
			}
			row.Character = NormalizeProfile(resp.Text)
			row.Attempts, row.Finish = attempt+1, resp.FinishReason
			reasons = cfg.Quality.CheckText(row.Character, resp.FinishReason)
			if !ParseProfile(row.Character).Valid() {
				reasons = append(reasons, ReasonMalformedProfile)
			}
			if len(reasons) == 0 {
				break
			}
		}
		return outcome{row: row, reasons: reasons}, nil
	})
	sum, err := r.finish(cfg.Problems)
	if runErr != nil {
		return sum, runErr
	}
	return sum, err
}
