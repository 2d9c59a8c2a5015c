package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/serve/engine"
)

// Limits of the sampling fields.
const (
	maxStops       = 16
	maxStopBytes   = 1024
	maxTopLogprobs = generate.MaxLogprobs
)

// sampling holds the validated sampling fields common to both endpoints.
type sampling struct {
	maxTokens   *int
	temperature *float64
	topP        *float64
	seed        *int64
	stop        []string
	n           *int
	promptParam string // "messages" or "prompt", for errors
}

// options turns the request's sampling fields, the persona's defaults and
// the server's limits into generate.Options. promptLen is the prompt's
// length in tokens, to check the context.
func (s *Server) options(p *loaded, sm sampling, promptLen int) (generate.Options, *apiError) {
	o := generate.Options{SkipSpecial: true, StopTokens: p.base.stops}
	if sm.n != nil && *sm.n != 1 {
		if *sm.n < 1 {
			return o, badRequest("n", "invalid_value", "n must be at least 1")
		}
		return o, badRequest("n", "unsupported_value", "n > 1 is not supported: send %d requests", *sm.n)
	}
	temp := 1.0
	if t := p.spec.Temperature; t != nil {
		temp = *t
	}
	if t := sm.temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return o, badRequest("temperature", "invalid_value", "temperature %g outside [0, 2]", *t)
		}
		temp = *t
	}
	topP := 1.0
	if t := p.spec.TopP; t != nil {
		topP = *t
	}
	if t := sm.topP; t != nil {
		if !(*t >= 0 && *t <= 1) {
			return o, badRequest("top_p", "invalid_value", "top_p %g outside [0, 1]", *t)
		}
		topP = *t
	}
	if topP == 0 {
		temp = 0 // only the most likely token is left
	}
	o.Temperature, o.TopP = float32(temp), float32(topP)
	if sm.seed != nil {
		o.Seed = uint64(*sm.seed)
	} else {
		o.Seed = mrand.Uint64()
	}
	if len(sm.stop) > maxStops {
		return o, badRequest("stop", "invalid_value", "at most %d stop sequences", maxStops)
	}
	for _, st := range sm.stop {
		if len(st) > maxStopBytes {
			return o, badRequest("stop", "invalid_value", "stop sequences are limited to %d bytes", maxStopBytes)
		}
	}
	o.Stop = sm.stop
	ctx := p.base.eb.Ctx
	if promptLen >= ctx {
		return o, badRequest(sm.promptParam, "context_length_exceeded", "this model's maximum context length is %d tokens, and the prompt has %d", ctx, promptLen)
	}
	room := ctx - promptLen
	limit := s.opts.MaxTokens
	if sm.maxTokens != nil {
		mt := *sm.maxTokens
		switch {
		case mt < 1:
			return o, badRequest("max_tokens", "invalid_value", "max_tokens must be at least 1")
		case mt > limit:
			return o, badRequest("max_tokens", "invalid_value", "max_tokens %d is larger than this server allows (%d)", mt, limit)
		case mt > room:
			return o, badRequest("max_tokens", "context_length_exceeded", "this model's maximum context length is %d tokens; you requested %d tokens (%d in the prompt, %d for the completion)", ctx, promptLen+mt, promptLen, mt)
		}
		o.MaxTokens = mt
	} else {
		if p.spec.MaxTokens > 0 {
			limit = min(limit, p.spec.MaxTokens)
		}
		o.MaxTokens = min(limit, room)
	}
	return o, nil
}

// messageText returns a message's text: a string, or the concatenated
// text parts of a list.
func messageText(raw json.RawMessage, param string) (string, *apiError) {
	parts, err := chattemplate.ParseContent(raw)
	if err != nil {
		return "", badRequest(param, "invalid_type", "%s must be a string or a list of text parts", param)
	}
	var b strings.Builder
	for i, p := range parts {
		if p.Type != "text" {
			return "", badRequest(fmt.Sprintf("%s[%d].type", param, i), "unsupported_value", "content parts of type %q are not supported (text only)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// chatMessages validates the request's messages and adds the persona's
// system prompt when the conversation has none.
func (s *Server) chatMessages(p *loaded, in []chatMessage) ([]chattemplate.Message, *apiError) {
	if len(in) == 0 {
		return nil, badRequest("messages", "invalid_value", "'messages' must hold at least one message")
	}
	if len(in) > s.opts.MaxMessages {
		return nil, badRequest("messages", "array_above_max_length", "at most %d messages", s.opts.MaxMessages)
	}
	var out []chattemplate.Message
	hasSystem := false
	for i, m := range in {
		param := fmt.Sprintf("messages[%d]", i)
		role := m.Role
		switch role {
		case "system", "developer":
			role, hasSystem = "system", true
		case "user", "assistant":
		default:
			return nil, badRequest(param+".role", "invalid_value", "role %q is not supported (system, developer, user, assistant)", m.Role)
		}
		text, e := messageText(m.Content, param+".content")
		if e != nil {
			return nil, e
		}
		if len(text) > s.opts.MaxMessageBytes {
			return nil, badRequest(param+".content", "string_above_max_length", "message content is limited to %d bytes", s.opts.MaxMessageBytes)
		}
		out = append(out, chattemplate.Message{Role: role, Content: text})
	}
	if prompt := p.spec.Prompt(); prompt != "" && !hasSystem {
		out = append([]chattemplate.Message{{Role: "system", Content: prompt}}, out...)
	}
	return out, nil
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) *apiError {
	var req chatRequest
	if e := decodeBody(r, &req); e != nil {
		return e
	}
	if len(req.Tools) > 0 && string(req.Tools) != "null" && string(req.Tools) != "[]" {
		return badRequest("tools", "unsupported_value", "tools are not supported")
	}
	wantLogprobs := req.Logprobs != nil && *req.Logprobs
	top := 0
	if req.TopLogprobs != nil {
		top = *req.TopLogprobs
		if top < 0 || top > maxTopLogprobs {
			return badRequest("top_logprobs", "invalid_value", "top_logprobs must be between 0 and %d", maxTopLogprobs)
		}
		if !wantLogprobs && top > 0 {
			return badRequest("top_logprobs", "invalid_value", "top_logprobs needs logprobs: true")
		}
	}
	for _, pen := range []*float64{req.FrequencyPenalty, req.PresencePenalty} {
		if pen != nil && !(*pen >= -2 && *pen <= 2) {
			return badRequest("frequency_penalty", "invalid_value", "penalties must be between -2 and 2")
		}
	}
	p, e := s.lookup(req.Model)
	if e != nil {
		return e
	}
	defer p.base.release()
	msgs, e := s.chatMessages(p, req.Messages)
	if e != nil {
		return e
	}
	ids, err := p.base.ck.EncodeChat(msgs, true, nil)
	if e := tokenizeError(err); e != nil {
		return e
	}
	if err != nil {
		return badRequest("messages", "invalid_value", "the chat template rejected the conversation: %v", err)
	}
	if len(ids) == 0 {
		return badRequest("messages", "invalid_value", "the conversation renders to no tokens")
	}
	maxTok := req.MaxCompletionTokens
	if maxTok == nil {
		maxTok = req.MaxTokens
	}
	o, e := s.options(p, sampling{maxTok, req.Temperature, req.TopP, req.Seed, req.Stop, req.N, "messages"}, len(ids))
	if e != nil {
		return e
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	g := &generation{s: s, p: p, model: req.Model, prompt: ids, opts: o, logprobs: wantLogprobs, top: top, chat: true, stream: req.Stream, includeUsage: includeUsage}
	return g.run(w, r)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) *apiError {
	var req completionRequest
	if e := decodeBody(r, &req); e != nil {
		return e
	}
	if req.Suffix != nil && *req.Suffix != "" {
		return badRequest("suffix", "unsupported_value", "suffix is not supported")
	}
	if req.BestOf != nil && *req.BestOf != 1 {
		return badRequest("best_of", "unsupported_value", "best_of other than 1 is not supported")
	}
	top := 0
	if req.Logprobs != nil {
		top = *req.Logprobs
		if top < 0 || top > maxTopLogprobs {
			return badRequest("logprobs", "invalid_value", "logprobs must be between 0 and %d", maxTopLogprobs)
		}
	}
	if req.Echo && req.Logprobs != nil {
		return badRequest("echo", "unsupported_value", "echo with logprobs is not supported")
	}
	p, e := s.lookup(req.Model)
	if e != nil {
		return e
	}
	defer p.base.release()
	text, ids, e := s.completionPrompt(p, req.Prompt)
	if e != nil {
		return e
	}
	maxTok := req.MaxTokens
	if maxTok == nil {
		def := 16 // OpenAI's default for completions
		maxTok = &def
		if p.spec.MaxTokens > 0 {
			*maxTok = min(*maxTok, p.spec.MaxTokens)
		}
		*maxTok = max(1, min(*maxTok, p.base.eb.Ctx-len(ids)))
	}
	o, e := s.options(p, sampling{maxTok, req.Temperature, req.TopP, req.Seed, req.Stop, req.N, "prompt"}, len(ids))
	if e != nil {
		return e
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	g := &generation{s: s, p: p, model: req.Model, prompt: ids, opts: o, logprobs: req.Logprobs != nil, top: top, stream: req.Stream, includeUsage: includeUsage}
	if req.Echo {
		g.echo = text
	}
	return g.run(w, r)
}

// completionPrompt reads a completions prompt: a string, a list of one
// string, a list of token ids, or a list of one such list.
func (s *Server) completionPrompt(p *loaded, raw json.RawMessage) (string, []int, *apiError) {
	tok := p.base.ck.Tokenizer
	var text string
	if err := json.Unmarshal(raw, &text); err == nil {
		if len(text) > s.opts.MaxMessageBytes {
			return "", nil, badRequest("prompt", "string_above_max_length", "the prompt is limited to %d bytes", s.opts.MaxMessageBytes)
		}
		ids, err := tok.EncodeChecked(text, true)
		if err != nil {
			return "", nil, tokenizeError(err)
		}
		return text, ids, nil
	}
	var texts []string
	if err := json.Unmarshal(raw, &texts); err == nil {
		if len(texts) != 1 {
			return "", nil, badRequest("prompt", "unsupported_value", "exactly one prompt per request is supported")
		}
		return s.completionPrompt(p, json.RawMessage(mustJSON(texts[0])))
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil {
		var lists [][]int
		if err := json.Unmarshal(raw, &lists); err != nil || len(lists) != 1 {
			return "", nil, badRequest("prompt", "invalid_type", "'prompt' must be a string or a list of token ids (one prompt per request)")
		}
		ids = lists[0]
	}
	if len(ids) == 0 {
		return "", nil, badRequest("prompt", "invalid_value", "the prompt is empty")
	}
	vocab := p.base.ck.Model.Config.Vocab
	for _, id := range ids {
		if id < 0 || id >= vocab {
			return "", nil, badRequest("prompt", "invalid_value", "token id %d outside the vocabulary [0,%d)", id, vocab)
		}
	}
	return tok.Decode(ids, false), ids, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// generation is one request on its way through the engine.
type generation struct {
	s            *Server
	p            *loaded
	model        string
	prompt       []int
	opts         generate.Options
	logprobs     bool
	top          int
	chat, stream bool
	includeUsage bool
	echo         string

	id      string
	created int64
	start   time.Time
}

// run submits the generation and answers, streaming or not.
func (g *generation) run(w http.ResponseWriter, r *http.Request) *apiError {
	g.start = time.Now()
	// The body has been read: lift its deadline, which would otherwise
	// end a long generation (the request has its own timeout).
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	g.id = newID(map[bool]string{true: "chatcmpl-", false: "cmpl-"}[g.chat])
	g.created = g.start.Unix()
	ctx, cancel := g.s.requestContext(r)
	defer cancel()
	st, err := g.s.eng.Submit(ctx, engine.Request{Base: g.p.base.eb, Prompt: g.prompt, Adapter: g.p.adapter, Hooks: g.p.hooks,
		Options: g.opts, Logprobs: g.logprobs, TopLogprobs: g.top, PrefixKey: g.p.prefixKey})
	switch {
	case errors.Is(err, engine.ErrQueueFull):
		g.s.metrics.rejected.Inc()
		e := newError(http.StatusTooManyRequests, typeRateLimit, "rate_limit_exceeded", "", "the server is busy: every generation slot is taken and the queue is full; retry shortly")
		e.RetryAfter = 1
		return e
	case errors.Is(err, engine.ErrClosed):
		return newError(http.StatusServiceUnavailable, typeServer, "shutting_down", "", "the server is shutting down")
	case err != nil:
		return badRequest("", "invalid_value", "%v", err)
	}
	defer st.Cancel()
	if g.stream {
		return g.streamOut(w, st)
	}
	return g.collect(w, st)
}

// timing follows a request's token arrivals for the latency metrics.
type timing struct {
	last     time.Time
	sawFirst bool
}

// observe records a chunk's timing in the metrics: the time to the first
// token, then the time per token.
func (g *generation) observe(t *timing, c engine.Chunk) {
	if c.Tokens == 0 {
		return
	}
	now := time.Now()
	m := g.s.metrics
	if !t.sawFirst {
		t.sawFirst = true
		m.ttft.Observe(now.Sub(g.start).Seconds())
	} else {
		gap := now.Sub(t.last).Seconds() / float64(c.Tokens)
		for i := 0; i < c.Tokens; i++ {
			m.tokenLatency.Observe(gap)
		}
	}
	t.last = now
}

// resultUsage is a finished generation's usage.
func resultUsage(res *engine.Result) usage {
	return usage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens, TotalTokens: res.PromptTokens + res.CompletionTokens,
		PromptTokensDetails: promptTokensDetails{CachedTokens: res.CachedTokens}}
}

func (g *generation) finished(res *engine.Result) {
	g.s.metrics.generation(g.p.spec.Name, res, time.Since(g.start))
}

// resultError maps a failed generation to an API error.
func resultError(res *engine.Result) *apiError {
	switch {
	case errors.Is(res.Err, engine.ErrTimeout):
		return newError(http.StatusGatewayTimeout, typeTimeout, "timeout", "", "the request did not finish within the server's time limit")
	case errors.Is(res.Err, engine.ErrClosed):
		return newError(http.StatusServiceUnavailable, typeServer, "shutting_down", "", "the server is shutting down")
	}
	return newError(http.StatusInternalServerError, typeServer, "", "", "generation failed: %v", res.Err)
}

// collect waits for the whole answer. The engine ends the stream when the
// request's context ends (client gone, deadline), so Recv needs none.
func (g *generation) collect(w http.ResponseWriter, st *engine.Stream) *apiError {
	var text strings.Builder
	var lps []generate.LogprobEntry
	var t timing
	for {
		c, err := st.Recv(context.Background())
		if err != nil {
			return nil
		}
		g.observe(&t, c)
		text.WriteString(c.Text)
		lps = append(lps, c.Logprobs...)
		if c.Result == nil {
			continue
		}
		res := c.Result
		g.finished(res)
		if res.Err != nil {
			return resultError(res)
		}
		if res.FinishReason == generate.FinishCancelled {
			return nil
		}
		u := resultUsage(res)
		if g.chat {
			ch := chatChoice{Message: assistantMessage{Role: "assistant", Content: text.String()}, FinishReason: res.FinishReason}
			if g.logprobs {
				ch.Logprobs = g.chatLogprobs(lps)
			}
			writeJSON(w, http.StatusOK, chatCompletion{ID: g.id, Object: "chat.completion", Created: g.created, Model: g.model,
				SystemFingerprint: fingerprint, Choices: []chatChoice{ch}, Usage: u})
			return nil
		}
		out := g.echo + text.String()
		fr := res.FinishReason
		ch := completionChoice{Text: out, FinishReason: &fr}
		if g.logprobs {
			ch.Logprobs = g.completionLogprobs(lps, len(g.echo))
		}
		writeJSON(w, http.StatusOK, completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model,
			SystemFingerprint: fingerprint, Choices: []completionChoice{ch}, Usage: &u})
		return nil
	}
}

// fingerprint is the system_fingerprint of every response.
const fingerprint = "fp_masque"

// streamOut sends the answer as server-sent events. A failed write (the
// client left) returns at once; the deferred Cancel frees the slot.
func (g *generation) streamOut(w http.ResponseWriter, st *engine.Stream) *apiError {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(delta chunkDelta, lp *chatLogprobs, finish *string) chatChunk {
		return chatChunk{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.model, SystemFingerprint: fingerprint,
			Choices: []chunkChoice{{Delta: delta, Logprobs: lp, FinishReason: finish}}}
	}
	textChunk := func(text string, lp *completionLogprobs, finish *string) completion {
		return completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model, SystemFingerprint: fingerprint,
			Choices: []completionChoice{{Text: text, Logprobs: lp, FinishReason: finish}}}
	}
	empty := ""
	if g.chat {
		if !send(chunk(chunkDelta{Role: "assistant", Content: &empty}, nil, nil)) {
			return nil
		}
	} else if g.echo != "" {
		if !send(textChunk(g.echo, nil, nil)) {
			return nil
		}
	}
	var t timing
	offset := len(g.echo)
	for {
		c, err := st.Recv(context.Background())
		if err != nil {
			return nil
		}
		g.observe(&t, c)
		if c.Text != "" || len(c.Logprobs) > 0 {
			var ok bool
			if g.chat {
				var lp *chatLogprobs
				if g.logprobs {
					lp = g.chatLogprobs(c.Logprobs)
				}
				text := c.Text
				ok = send(chunk(chunkDelta{Content: &text}, lp, nil))
			} else {
				var lp *completionLogprobs
				if g.logprobs {
					lp = g.completionLogprobs(c.Logprobs, offset)
				}
				ok = send(textChunk(c.Text, lp, nil))
			}
			offset += len(c.Text)
			if !ok {
				return nil // deferred Cancel frees the slot
			}
		}
		if c.Result == nil {
			continue
		}
		res := c.Result
		g.finished(res)
		if res.Err != nil {
			send(map[string]any{"error": resultError(res)})
			return nil
		}
		if res.FinishReason == generate.FinishCancelled {
			return nil
		}
		fr := res.FinishReason
		if g.chat {
			send(chunk(chunkDelta{}, nil, &fr))
		} else {
			send(textChunk("", nil, &fr))
		}
		if g.includeUsage {
			u := resultUsage(res)
			if g.chat {
				send(chatChunk{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.model, SystemFingerprint: fingerprint, Choices: []chunkChoice{}, Usage: &u})
			} else {
				send(completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model, SystemFingerprint: fingerprint, Choices: []completionChoice{}, Usage: &u})
			}
		}
		fmt.Fprint(w, "data: [DONE]\n\n")
		rc.Flush()
		return nil
	}
}

// tokenText is a token's text and bytes for logprobs.
func (g *generation) tokenText(id int) (string, []int) {
	s := g.p.base.ck.Tokenizer.Decode([]int{id}, false)
	b := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		b[i] = int(s[i])
	}
	return s, b
}

func finite(x float32) float32 {
	if math.IsInf(float64(x), -1) || math.IsNaN(float64(x)) {
		return -9999
	}
	return x
}

func (g *generation) chatLogprobs(lps []generate.LogprobEntry) *chatLogprobs {
	out := &chatLogprobs{Content: []tokenLogprob{}}
	for _, e := range lps {
		s, b := g.tokenText(e.ID)
		tl := tokenLogprob{Token: s, Logprob: finite(e.Logprob), Bytes: b, TopLogprobs: []topLogprob{}}
		for _, t := range e.Top {
			ts, tb := g.tokenText(t.ID)
			tl.TopLogprobs = append(tl.TopLogprobs, topLogprob{Token: ts, Logprob: finite(t.Logprob), Bytes: tb})
		}
		out.Content = append(out.Content, tl)
	}
	return out
}

func (g *generation) completionLogprobs(lps []generate.LogprobEntry, offset int) *completionLogprobs {
	out := &completionLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
	for _, e := range lps {
		s, _ := g.tokenText(e.ID)
		out.Tokens = append(out.Tokens, s)
		out.TokenLogprobs = append(out.TokenLogprobs, finite(e.Logprob))
		top := map[string]float32{}
		for _, t := range e.Top {
			ts, _ := g.tokenText(t.ID)
			if _, dup := top[ts]; !dup {
				top[ts] = finite(t.Logprob)
			}
		}
		out.TopLogprobs = append(out.TopLogprobs, top)
		out.TextOffset = append(out.TextOffset, offset)
		offset += len(s)
	}
	return out
}
