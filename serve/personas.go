package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/masque-ai/masque/checkpoint"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/internal/builtin"
	"github.com/masque-ai/masque/internal/fileerr"
	"github.com/masque-ai/masque/model"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve/engine"
)

// baseModel is a model that personas run on: the server's default base
// (Options.Base), a base that personas of the start-up registry name
// (Spec.Model: shared by every persona naming it, with an engine of its
// own), or the own model of a persona added at run time. Personas and
// requests in flight hold references; a model the server opened is closed
// when the last one is released.
type baseModel struct {
	ck    *checkpoint.Checkpoint
	eb    *engine.Base
	eng   *engine.Engine // the engine that runs it
	stops []int
	owned bool
	bytes int64
	// key identifies the model file (modelKey) for the bases the server
	// shares between personas; "" for a persona's own model.
	key string
	// shared: one of the server's bases (Server.bases), which outlives
	// its personas.
	shared bool

	tokTable tokenTableOnce // token texts, built on first use

	mu   sync.Mutex
	refs int
}

func newBaseModel(name string, ck *checkpoint.Checkpoint, ctx int, owned bool) *baseModel {
	return &baseModel{
		ck:    ck,
		eb:    &engine.Base{Name: name, Model: ck.Model, Tokenizer: generate.FromTokenizer(ck.Tokenizer), Ctx: ctx},
		stops: ck.StopTokens(),
		owned: owned,
		bytes: modelBytes(ck.Model),
		refs:  1,
	}
}

func (b *baseModel) acquire() {
	b.mu.Lock()
	b.refs++
	b.mu.Unlock()
}

// release drops a reference; an owned model is closed with the last one.
func (b *baseModel) release() {
	b.mu.Lock()
	b.refs--
	last := b.refs == 0
	b.mu.Unlock()
	if last && b.owned {
		b.ck.Close()
	}
}

// modelBytes is the memory of a model's weights.
func modelBytes(m *model.Model) int64 {
	n := int64(len(m.Embed.Data)) + int64(len(m.Norm))*4
	if m.LMHead != m.Embed {
		n += int64(len(m.LMHead.Data))
	}
	for i := range m.Layers {
		l := &m.Layers[i]
		for p := model.Proj(0); p < model.NumProj; p++ {
			n += int64(len(l.Weight(p).Data)) + int64(len(l.Bias(p)))*4
		}
		n += int64(len(l.AttnNorm)+len(l.MLPNorm)+len(l.QNorm)+len(l.KNorm)) * 4
	}
	return n
}

// loaded is a persona ready to serve.
type loaded struct {
	spec    persona.Spec
	base    *baseModel
	adapter model.Adapter
	hooks   *model.Hooks
	bytes   int64 // memory beyond the shared base
	created int64
	mask    *persona.MaskSummary // what the mask file says, nil without one
	// prefixKey tells the engine which requests may share prompt keys and
	// values: unique to this load of the persona (a persona removed and
	// added again with other files gets a new one).
	prefixKey string
}

// personaObject is a persona as /v1/personas shows it.
type personaObject struct {
	ID     string `json:"id"`
	Object string `json:"object"`
	Kind   string `json:"kind"`
	// Base is the base model it runs on (an id of GET /health's "bases",
	// or its own model's name).
	Base         string   `json:"base"`
	Description  string   `json:"description,omitempty"`
	SystemPrompt string   `json:"system_prompt,omitempty"`
	Greeting     string   `json:"greeting,omitempty"`
	Tags         []string `json:"tags,omitempty"`
	MemoryBytes  int64    `json:"memory_bytes"`
	Created      int64    `json:"created"`
	// Mask is how a mask persona's mask was made (method, target
	// sparsity) and the share of weights it prunes, from the mask file.
	Mask *persona.MaskSummary `json:"mask,omitempty"`
	// The persona's own sampling defaults, when it has them.
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	MaxTokens   int      `json:"max_tokens,omitempty"`
	// Spec is the persona as it was given (macros kept), without file
	// paths, for editors: POST /v1/personas?replace=true takes it back.
	Spec editableSpec `json:"spec"`
}

// editableSpec is the part of a persona spec that an editor changes.
type editableSpec struct {
	Name         string   `json:"name"`
	Description  string   `json:"description,omitempty"`
	SystemPrompt string   `json:"system_prompt,omitempty"`
	Greeting     string   `json:"greeting,omitempty"`
	Examples     string   `json:"examples,omitempty"`
	Temperature  *float64 `json:"temperature,omitempty"`
	TopP         *float64 `json:"top_p,omitempty"`
	MaxTokens    int      `json:"max_tokens,omitempty"`
	Tags         []string `json:"tags,omitempty"`
}

func (p *loaded) object() personaObject {
	sp := p.spec
	return personaObject{ID: sp.Name, Object: "persona", Kind: sp.Kind(), Base: p.base.eb.Name, Description: sp.Expand(sp.Description),
		SystemPrompt: sp.Prompt(), Greeting: sp.Expand(sp.Greeting), Tags: sp.Tags, MemoryBytes: p.bytes, Created: p.created,
		Mask: p.mask, Temperature: sp.Temperature, TopP: sp.TopP, MaxTokens: sp.MaxTokens,
		Spec: editableSpec{Name: sp.Name, Description: sp.Description, SystemPrompt: sp.SystemPrompt, Greeting: sp.Greeting, Examples: sp.Examples,
			Temperature: sp.Temperature, TopP: sp.TopP, MaxTokens: sp.MaxTokens, Tags: sp.Tags}}
}

func (s *Server) sortedNamesLocked() []string {
	names := make([]string, 0, len(s.personas))
	for n := range s.personas {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// lookup returns the persona (or the bare base) named id, with a reference
// on its model that the caller must release.
func (s *Server) lookup(id string) (*loaded, *apiError) {
	if id == "" {
		return nil, badRequest("model", "missing_model", "'model' is required: a persona id from GET /v1/models")
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, newError(http.StatusServiceUnavailable, typeServer, "shutting_down", "", "the server is shutting down")
	}
	p := s.personas[id]
	if p == nil {
		if id != s.opts.BaseID {
			return nil, modelNotFound(id)
		}
		p = &loaded{spec: persona.Spec{Name: id}, base: s.base, prefixKey: baseKey(id)}
	}
	p.base.acquire()
	return p, nil
}

// errConflict marks a persona that exists already.
var errConflict = errors.New("conflict")

// addPersona loads spec and registers it. root, when not empty, is the
// folder that the spec's relative file paths must stay inside (personas
// added over the API); startup personas pass "".
func (s *Server) addPersona(spec persona.Spec, root string) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.Card != "" {
		return errors.New("card paths are read from registries only: upload the card instead")
	}
	if spec.Name == s.opts.BaseID {
		return fmt.Errorf("%w: %q is the base model's id", errConflict, spec.Name)
	}
	s.mu.RLock()
	_, dup := s.personas[spec.Name]
	s.mu.RUnlock()
	if dup {
		return fmt.Errorf("%w: persona %s exists already", errConflict, spec.Name)
	}
	var p *loaded
	if shared := s.sharedBase(spec, root); shared != nil {
		// A base the server runs already: nothing to open but the
		// persona's mask or adapter, over that base. A persona added at
		// run time gets the model's path, absolute (or its name), for
		// the registry.
		if root != "" {
			spec.Model = shared.key
		}
		p = &loaded{spec: spec, base: shared, created: time.Now().Unix()}
		if spec.Kind() != persona.KindModel {
			op, err := persona.Open(spec, shared.ck.Model, root)
			if err != nil {
				return err
			}
			if op.Warning != "" {
				s.opts.Log.Warn(op.Warning, "persona", spec.Name)
			}
			p.spec, p.mask = op.Spec, op.Mask
			p.adapter, p.hooks, p.bytes = op.Adapter(), op.Hooks(), op.Bytes()
		}
	} else if spec.Model != "" && spec.Kind() != persona.KindModel {
		return fmt.Errorf("persona %s: its mask or LoRA adapter applies over %s, which is not one of the server's bases: name a running base (its id in /health) or start the server with a persona on that model in the registry", spec.Name, spec.Model)
	} else {
		op, err := persona.Open(spec, s.base.ck.Model, root)
		if err != nil {
			return err
		}
		spec = op.Spec
		if op.Warning != "" {
			s.opts.Log.Warn(op.Warning, "persona", spec.Name)
		}
		p = &loaded{spec: spec, base: s.base, created: time.Now().Unix(), mask: op.Mask}
		if ck := op.Checkpoint; ck != nil { // a persona with its own model, on the default base's engine
			if _, err := ck.NeedTokenizer(); err != nil {
				ck.Close()
				return err
			}
			_ = ck.Model.SetCacheType(s.opts.CacheType) // validated by defaults
			bm := newBaseModel(spec.Name+"@"+filepath.Base(spec.Model), ck, min(s.opts.Ctx, modelCtx(ck)), true)
			bm.eng = s.eng
			if err := s.eng.CheckBase(bm.eb); err != nil {
				ck.Close()
				return err
			}
			p.base, p.bytes = bm, bm.bytes
		} else {
			p.adapter, p.hooks, p.bytes = op.Adapter(), op.Hooks(), op.Bytes()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.personas[spec.Name]; dup || s.closed {
		if !p.base.shared {
			p.base.release()
		}
		if s.closed {
			return errors.New("the server is shutting down")
		}
		return fmt.Errorf("%w: persona %s exists already", errConflict, spec.Name)
	}
	if p.base.shared {
		p.base.acquire()
	}
	s.loads++
	p.prefixKey = fmt.Sprintf("%s#%d", spec.Name, s.loads)
	s.personas[spec.Name] = p
	return nil
}

// sharedBase returns the server's base that a persona with its own model
// (Spec.Model) runs on: the one opened from the same file (modelKey), or
// nil when it names another model (or none). root is addPersona's.
func (s *Server) sharedBase(spec persona.Spec, root string) *baseModel {
	if spec.Model == "" {
		return nil
	}
	path := spec.Model
	if root != "" {
		// A persona added at run time may name a running base by its id
		// or by its model as the server was given it; its other models
		// must lie inside root.
		for _, b := range s.bases {
			if spec.Model == b.eb.Name || spec.Model == b.ck.Path {
				return b
			}
		}
		full, err := persona.ResolveUnder(root, path)
		if err != nil {
			return nil // persona.Open says why
		}
		path = full
	}
	key := modelKey(path)
	for _, b := range s.bases {
		if b.key == key {
			return b
		}
	}
	return nil
}

// modelKey identifies the model that path names: the file or folder's
// absolute path with symbolic links resolved, or path itself when no such
// file exists (a built-in model's name, a hub id).
func modelKey(path string) string {
	if builtin.IsVoices(path) {
		return builtin.Voices
	}
	if _, err := os.Stat(path); err != nil {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// baseKey is the prompt cache key of the bare base model: load 0, which
// no persona gets.
func baseKey(id string) string { return id + "#0" }

// removePersona unregisters a persona. Requests in flight finish on it.
func (s *Server) removePersona(name string) bool {
	s.mu.Lock()
	p := s.personas[name]
	delete(s.personas, name)
	s.mu.Unlock()
	if p == nil {
		return false
	}
	if !p.base.shared {
		p.base.eng.ForgetBase(p.base.eb)
	} else {
		p.base.eng.ForgetPrefix(p.base.eb, p.prefixKey)
	}
	p.base.release()
	s.metrics.dropPersona(name, p.base.eb.Name, !p.base.shared)
	return true
}

// persist writes the personas being served to Options.Registry, if set.
func (s *Server) persist() error {
	if s.opts.Registry == "" {
		return nil
	}
	s.persistMu.Lock()
	defer s.persistMu.Unlock()
	s.mu.RLock()
	var specs []persona.Spec
	for _, n := range s.sortedNamesLocked() {
		specs = append(specs, s.personas[n].spec)
	}
	s.mu.RUnlock()
	return persona.SaveRegistry(s.opts.Registry, specs)
}

func (s *Server) handlePersonas(w http.ResponseWriter, r *http.Request) *apiError {
	if r.Method == http.MethodGet {
		s.mu.RLock()
		out := []personaObject{}
		for _, n := range s.sortedNamesLocked() {
			out = append(out, s.personas[n].object())
		}
		s.mu.RUnlock()
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
		return nil
	}
	spec, e := parsePersonaUpload(r)
	if e != nil {
		return e
	}
	logOf(r).persona = spec.Name
	if q := r.URL.Query().Get("replace"); q == "1" || q == "true" {
		return s.replacePersona(w, spec)
	}
	root := s.opts.PersonaRoot
	if root == "" && (spec.Mask != "" || spec.LoRA != "" || spec.Model != "") {
		return badRequest("", "files_disabled", "personas added at run time cannot use files: start the server with --persona-root")
	}
	if root == "" {
		root = "."
	}
	if err := s.addPersona(spec, root); err != nil {
		if errors.Is(err, errConflict) {
			return newError(http.StatusConflict, typeInvalidRequest, "persona_exists", "name", "%v", err)
		}
		return badRequest("", "invalid_persona", "%v", err)
	}
	if err := s.persist(); err != nil {
		s.removePersona(spec.Name)
		return newError(http.StatusInternalServerError, typeServer, "registry_not_written", "", "persona %s not added: %v", spec.Name, err)
	}
	s.mu.RLock()
	obj := s.personas[spec.Name].object()
	s.mu.RUnlock()
	writeJSON(w, http.StatusCreated, obj)
	return nil
}

// replacePersona is POST /v1/personas?replace=true: the persona named by
// spec is replaced (edited). The files (mask, LoRA, model), lorebook and
// character name of the old persona are kept when spec gives none, so an
// edit of prompts and sampling settings needs to send only those. If the
// new persona does not load, the old one is restored.
func (s *Server) replacePersona(w http.ResponseWriter, spec persona.Spec) *apiError {
	if err := persona.ValidName(spec.Name); err != nil {
		return badRequest("name", "invalid_name", "%v", err)
	}
	s.mu.RLock()
	old := s.personas[spec.Name]
	s.mu.RUnlock()
	if old == nil {
		return newError(http.StatusNotFound, typeInvalidRequest, "persona_not_found", "name", "no persona %q to replace", spec.Name)
	}
	prev := old.spec
	root := s.opts.PersonaRoot
	if spec.Mask == "" && spec.LoRA == "" && spec.Model == "" {
		// The old files, already resolved when the persona was loaded.
		spec.Mask, spec.LoRA, spec.Model = prev.Mask, prev.LoRA, prev.Model
		root = ""
	} else if root == "" {
		return badRequest("", "files_disabled", "personas added at run time cannot use files: start the server with --persona-root")
	}
	if spec.Lorebook == nil {
		spec.Lorebook = prev.Lorebook
	}
	if spec.Char == "" {
		spec.Char = prev.Char
	}
	if err := spec.Validate(); err != nil {
		return badRequest("", "invalid_persona", "%v", err)
	}
	s.removePersona(spec.Name)
	if err := s.addPersona(spec, root); err != nil {
		if rerr := s.addPersona(prev, ""); rerr != nil {
			return newError(http.StatusInternalServerError, typeServer, "persona_lost", "", "persona %s: the new version did not load (%v) and the old one did not load again (%v)", spec.Name, err, rerr)
		}
		return badRequest("", "invalid_persona", "persona %s not replaced (the old one is kept): %v", spec.Name, err)
	}
	if err := s.persist(); err != nil {
		return newError(http.StatusInternalServerError, typeServer, "registry_not_written", "", "persona %s replaced, but not in the registry: %v", spec.Name, err)
	}
	s.mu.RLock()
	obj := s.personas[spec.Name].object()
	s.mu.RUnlock()
	writeJSON(w, http.StatusOK, obj)
	return nil
}

// parsePersonaUpload reads a persona from a request body: a spec as JSON,
// or a SillyTavern card (JSON or PNG). For cards, the query parameters
// name, mask, lora and model override or add to what the card says.
func parsePersonaUpload(r *http.Request) (persona.Spec, *apiError) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return persona.Spec{}, newError(http.StatusRequestEntityTooLarge, typeInvalidRequest, "request_too_large", "", "the request body is larger than %d bytes", mbe.Limit)
		}
		return persona.Spec{}, badRequest("", "", "reading the body: %v", err)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isCard := ct == "image/png" || bytes.HasPrefix(data, []byte("\x89PNG"))
	if !isCard {
		var peek struct {
			Spec string `json:"spec"`
		}
		if err := json.Unmarshal(data, &peek); err != nil {
			return persona.Spec{}, badRequest("", "invalid_json", "we could not parse the JSON body of your request: %v", err)
		}
		isCard = strings.HasPrefix(peek.Spec, "chara_card")
	}
	if isCard {
		c, err := persona.ParseCard(data)
		if err != nil {
			return persona.Spec{}, badRequest("", "invalid_card", "%v", err)
		}
		spec, err := c.Spec()
		if err != nil {
			return persona.Spec{}, badRequest("", "invalid_card", "%v", err)
		}
		q := r.URL.Query()
		if v := q.Get("name"); v != "" {
			spec.Name = v
		}
		spec.Mask, spec.LoRA, spec.Model = q.Get("mask"), q.Get("lora"), q.Get("model")
		return spec, nil
	}
	var spec persona.Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return persona.Spec{}, badRequest(te.Field, "invalid_persona", "persona: invalid type for %s: expected %s, got a JSON %s", fieldName(te.Field), fileerr.Kind(te.Type), te.Value)
		}
		return persona.Spec{}, badRequest("", "invalid_persona", "persona: %v", err)
	}
	return spec, nil
}

func (s *Server) handlePersona(w http.ResponseWriter, r *http.Request) *apiError {
	name := strings.TrimPrefix(r.URL.Path, "/v1/personas/")
	if err := persona.ValidName(name); err != nil {
		return badRequest("name", "invalid_name", "%v", err)
	}
	logOf(r).persona = name
	if r.Method == http.MethodDelete {
		if name == s.opts.BaseID {
			return badRequest("name", "base_model", "the base model cannot be removed")
		}
		if !s.removePersona(name) {
			return newError(http.StatusNotFound, typeInvalidRequest, "persona_not_found", "name", "no persona %q", name)
		}
		if err := s.persist(); err != nil {
			return newError(http.StatusInternalServerError, typeServer, "registry_not_written", "", "persona %s removed, but not from the registry: %v", name, err)
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": name, "object": "persona", "deleted": true})
		return nil
	}
	s.mu.RLock()
	p := s.personas[name]
	s.mu.RUnlock()
	if p == nil {
		return newError(http.StatusNotFound, typeInvalidRequest, "persona_not_found", "name", "no persona %q", name)
	}
	writeJSON(w, http.StatusOK, p.object())
	return nil
}
