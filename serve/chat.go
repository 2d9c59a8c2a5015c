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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/masque-ai/masque/chattemplate"
	"github.com/masque-ai/masque/generate"
	"github.com/masque-ai/masque/persona"
	"github.com/masque-ai/masque/serve/engine"
)

// Limits of the sampling fields.
const (
	maxStops       = 16
	maxStopBytes   = 1024
	maxTopLogprobs = generate.MaxLogprobs
	maxChoices     = 8    // n
	maxLogitBias   = 1024 // entries of logit_bias
)

// sampling holds a request's sampling fields, common to both endpoints.
type sampling struct {
	samplingFields
	maxParam    string // the name max_tokens came under, for errors
	promptParam string // "messages" or "prompt", for errors
	// defMax is the endpoint's default max_tokens when the request sends
	// none (0: the server's MaxTokens). The default is a default, not a
	// request: the persona's max_tokens, the server's limit and the room
	// left in the context cap it, where a value the client sent that
	// exceeds them is an error.
	defMax int
}

// options turns the request's sampling fields, the persona's defaults and
// the server's limits into generate.Options and the number of choices.
// promptLen is the prompt's length in tokens, to check the context.
func (s *Server) options(p *loaded, sm sampling, promptLen int) (generate.Options, int, *apiError) {
	o := generate.Options{SkipSpecial: true, StopTokens: p.base.stops}
	n := 1
	if sm.N != nil {
		n = *sm.N
		if n < 1 || n > maxChoices {
			return o, 0, badRequest("n", "invalid_value", "n must be between 1 and %d", maxChoices)
		}
	}
	temp := 1.0
	if t := p.spec.Temperature; t != nil {
		temp = *t
	}
	if t := sm.Temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return o, 0, badRequest("temperature", "invalid_value", "temperature %g outside [0, 2]", *t)
		}
		temp = *t
	}
	topP := 1.0
	if t := p.spec.TopP; t != nil {
		topP = *t
	}
	if t := sm.TopP; t != nil {
		if !(*t >= 0 && *t <= 1) {
			return o, 0, badRequest("top_p", "invalid_value", "top_p %g outside [0, 1]", *t)
		}
		topP = *t
	}
	if topP == 0 {
		temp = 0 // only the most likely token is left
	}
	o.Temperature, o.TopP = float32(temp), float32(topP)
	if k := sm.TopK; k != nil {
		if *k < -1 {
			return o, 0, badRequest("top_k", "invalid_value", "top_k %d: use a positive number, or 0 or -1 for no limit", *k)
		}
		o.TopK = max(*k, 0)
	}
	if m := sm.MinP; m != nil {
		if !(*m >= 0 && *m <= 1) {
			return o, 0, badRequest("min_p", "invalid_value", "min_p %g outside [0, 1]", *m)
		}
		o.MinP = float32(*m)
	}
	if r := sm.RepetitionPenalty; r != nil {
		if !(*r > 0 && *r <= 10) {
			return o, 0, badRequest("repetition_penalty", "invalid_value", "repetition_penalty %g outside (0, 10] (1: off)", *r)
		}
		o.RepetitionPenalty = float32(*r)
	}
	for _, pen := range []struct {
		name string
		v    *float64
		dst  *float32
	}{{"frequency_penalty", sm.FrequencyPenalty, &o.FrequencyPenalty}, {"presence_penalty", sm.PresencePenalty, &o.PresencePenalty}} {
		if pen.v != nil {
			if !(*pen.v >= -2 && *pen.v <= 2) {
				return o, 0, badRequest(pen.name, "invalid_value", "%s %g outside [-2, 2]", pen.name, *pen.v)
			}
			*pen.dst = float32(*pen.v)
		}
	}
	if len(sm.LogitBias) > maxLogitBias {
		return o, 0, badRequest("logit_bias", "invalid_value", "logit_bias has %d entries, at most %d", len(sm.LogitBias), maxLogitBias)
	}
	vocab := p.base.ck.Model.Config.Vocab
	for k, v := range sm.LogitBias {
		id, err := strconv.Atoi(k)
		if err != nil || id < 0 || id >= vocab {
			return o, 0, badRequest("logit_bias", "invalid_value", "logit_bias key %q is not a token id in [0, %d)", k, vocab)
		}
		if !(v >= -100 && v <= 100) {
			return o, 0, badRequest("logit_bias", "invalid_value", "logit_bias of token %d is %g, outside [-100, 100]", id, v)
		}
		if o.LogitBias == nil {
			o.LogitBias = map[int]float32{}
		}
		o.LogitBias[id] = float32(v)
	}
	if sm.Seed != nil {
		o.Seed = uint64(*sm.Seed)
	} else {
		o.Seed = mrand.Uint64()
	}
	if len(sm.Stop) > maxStops {
		return o, 0, badRequest("stop", "invalid_value", "at most %d stop sequences", maxStops)
	}
	for _, st := range sm.Stop {
		if len(st) > maxStopBytes {
			return o, 0, badRequest("stop", "invalid_value", "stop sequences are limited to %d bytes", maxStopBytes)
		}
	}
	o.Stop = sm.Stop
	ctx := p.base.eb.Ctx
	if promptLen >= ctx {
		return o, 0, badRequest(sm.promptParam, "context_length_exceeded", "this model's maximum context length is %d tokens, and the prompt has %d", ctx, promptLen)
	}
	room := ctx - promptLen
	limit := s.opts.MaxTokens
	if sm.MaxTokens != nil {
		mt, param := *sm.MaxTokens, sm.maxParam
		switch {
		case mt < 1:
			return o, 0, badRequest(param, "invalid_value", "%s must be at least 1", param)
		case mt > limit:
			return o, 0, badRequest(param, "invalid_value", "%s %d is larger than this server allows (%d)", param, mt, limit)
		case mt > room:
			return o, 0, badRequest(param, "context_length_exceeded", "this model's maximum context length is %d tokens; you requested %d tokens (%d in the prompt, %d for the completion)", ctx, promptLen+mt, promptLen, mt)
		}
		o.MaxTokens = mt
	} else {
		if sm.defMax > 0 {
			limit = min(limit, sm.defMax)
		}
		if p.spec.MaxTokens > 0 {
			limit = min(limit, p.spec.MaxTokens)
		}
		o.MaxTokens = min(limit, room)
	}
	return o, n, nil
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
		case "user", "assistant", "tool":
		default:
			return nil, badRequest(param+".role", "invalid_value", "role %q is not supported (system, developer, user, assistant, tool)", m.Role)
		}
		text, e := messageText(m.Content, param+".content")
		if e != nil {
			return nil, e
		}
		if len(text) > s.opts.MaxMessageBytes {
			return nil, badRequest(param+".content", "string_above_max_length", "message content is limited to %d bytes", s.opts.MaxMessageBytes)
		}
		msg := chattemplate.Message{Role: role, Content: text}
		if e := messageTools(&msg, m, param); e != nil {
			return nil, e
		}
		out = append(out, msg)
	}
	if !hasSystem {
		// The persona's prompt, with the lorebook entries that the latest
		// messages call up (their token budget counted with the model's
		// tokenizer), and the entries that go into the conversation.
		texts := make([]string, len(out))
		for i, m := range out {
			texts[i] = m.Content
		}
		var count func(string) int
		if tok, err := p.base.ck.NeedTokenizer(); err == nil {
			count = func(s string) int {
				ids, err := tok.EncodeChecked(s, false)
				if err != nil {
					return len(s)
				}
				return len(ids)
			}
		}
		c := p.spec.PromptFor(texts, count)
		out = insertLore(out, c.Inserts)
		if c.System != "" {
			out = append([]chattemplate.Message{{Role: "system", Content: c.System}}, out...)
		}
	}
	return out, nil
}

// insertLore puts lorebook entries into the conversation msgs, each
// Depth messages before its end (deepest first, as PromptFor gives them).
// A last assistant message that is to be continued (assistant prefill)
// stays last.
func insertLore(msgs []chattemplate.Message, ins []persona.LoreInsert) []chattemplate.Message {
	if len(ins) == 0 {
		return msgs
	}
	n := len(msgs)
	if n > 0 && msgs[n-1].Role == "assistant" {
		n--
	}
	out := make([]chattemplate.Message, 0, len(msgs)+len(ins))
	for i := 0; i <= len(msgs); i++ {
		for _, x := range ins {
			if max(0, n-x.Depth) == i {
				out = append(out, chattemplate.Message{Role: x.Role, Content: x.Content})
			}
		}
		if i < len(msgs) {
			out = append(out, msgs[i])
		}
	}
	return out
}

func newID(prefix string) string {
	var b [12]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// prefillMark is put at the end of a last assistant message to find where
// its text ends in the rendered conversation.
const prefillMark = "\u2063masque-prefill\u2063"

// encodeChat renders and tokenizes a conversation. When the last message is
// the assistant's, the reply continues it (assistant prefill): the
// template is rendered without the generation prompt and cut where that
// message's text ends, before whatever closes the turn.
//
// vars are extra template variables (the tools); suffix, when not empty,
// is put after the generation prompt (a forced tool call's opening).
func (s *Server) encodeChat(p *loaded, msgs []chattemplate.Message, vars map[string]any, suffix string) ([]int, *apiError) {
	last := len(msgs) - 1
	if msgs[last].Role != "assistant" && suffix == "" {
		ids, err := p.base.ck.EncodeChat(msgs, true, vars)
		if e := tokenizeError(err); e != nil {
			return nil, e
		}
		if err != nil {
			return nil, badRequest("messages", "invalid_value", "the chat template rejected the conversation: %v", err)
		}
		return ids, nil
	}
	var text string
	if msgs[last].Role != "assistant" {
		head, err := p.base.ck.RenderChat(msgs, true, vars)
		if err != nil {
			return nil, badRequest("messages", "invalid_value", "the chat template rejected the conversation: %v", err)
		}
		text = head + suffix + prefillMark
	} else {
		marked := slices.Clone(msgs)
		marked[last].Content += prefillMark
		var err error
		if text, err = p.base.ck.RenderChat(marked, false, vars); err != nil {
			return nil, badRequest("messages", "invalid_value", "the chat template rejected the conversation: %v", err)
		}
	}
	i := strings.LastIndex(text, prefillMark)
	if i < 0 {
		return nil, badRequest(fmt.Sprintf("messages[%d]", last), "unsupported_value", "this model's chat template drops the last assistant message, so it cannot be continued")
	}
	tok, err := p.base.ck.NeedTokenizer()
	if err != nil {
		return nil, newError(http.StatusInternalServerError, typeServer, "", "", "%v", err)
	}
	ids, err := tok.EncodeChecked(text[:i], false)
	if err != nil {
		if e := tokenizeError(err); e != nil {
			return nil, e
		}
		return nil, badRequest("messages", "invalid_value", "the conversation could not be tokenized: %v", err)
	}
	return ids, nil
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) *apiError {
	var req chatRequest
	if e := decodeStrict(r, &req); e != nil {
		return e
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
	sm := sampling{samplingFields: req.samplingFields, maxParam: "max_tokens", promptParam: "messages"}
	if req.MaxCompletionTokens != nil {
		if req.MaxTokens != nil && *req.MaxTokens != *req.MaxCompletionTokens {
			return badRequest("max_completion_tokens", "invalid_value", "max_tokens (%d) and max_completion_tokens (%d) disagree: send one", *req.MaxTokens, *req.MaxCompletionTokens)
		}
		sm.MaxTokens, sm.maxParam = req.MaxCompletionTokens, "max_completion_tokens"
	}
	p, e := s.lookup(req.Model)
	if e != nil {
		return e
	}
	defer p.base.release()
	logOf(r).persona = p.spec.Name
	rf, e := s.responseFormat(p, req.ResponseFormat)
	if e != nil {
		return e
	}
	tools, e := s.parseTools(p, req.Tools, req.ToolChoice)
	if e != nil {
		return e
	}
	if tools != nil && req.ParallelToolCalls != nil && !*req.ParallelToolCalls {
		tools.single = true
	}
	if tools != nil && tools.constraint != nil && rf != nil {
		return badRequest("response_format", "invalid_value", "response_format cannot be combined with tool_choice %q, which decodes a tool call", tools.choice)
	}
	msgs, e := s.chatMessages(p, req.Messages)
	if e != nil {
		return e
	}
	var prefill string
	if tools != nil {
		prefill = tools.prefill
		if tools.constraint != nil && msgs[len(msgs)-1].Role == "assistant" {
			return badRequest("tool_choice", "invalid_value", "tool_choice %q starts a new assistant turn with a call, so the conversation cannot end with an assistant message to continue", tools.choice)
		}
	}
	ids, e := s.encodeChat(p, msgs, tools.vars(), prefill)
	if e != nil {
		return e
	}
	if len(ids) == 0 {
		return badRequest("messages", "invalid_value", "the conversation renders to no tokens")
	}
	o, n, e := s.options(p, sm, len(ids))
	if e != nil {
		return e
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	g := &generation{s: s, p: p, model: req.Model, prompt: ids, opts: o, n: n, format: rf, logprobs: wantLogprobs, top: top, chat: true, stream: req.Stream, includeUsage: includeUsage, tools: tools}
	g.hideReasoning = s.opts.HideReasoning
	if p.spec.HideReasoning != nil {
		g.hideReasoning = *p.spec.HideReasoning
	}
	if req.HideReasoning != nil {
		g.hideReasoning = *req.HideReasoning
	}
	return g.run(w, r)
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) *apiError {
	var req completionRequest
	if e := decodeStrict(r, &req); e != nil {
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
	logOf(r).persona = p.spec.Name
	rf, e := s.responseFormat(p, req.ResponseFormat)
	if e != nil {
		return e
	}
	text, ids, e := s.completionPrompt(p, req.Prompt)
	if e != nil {
		return e
	}
	sm := sampling{samplingFields: req.samplingFields, maxParam: "max_tokens", promptParam: "prompt", defMax: 16} // OpenAI's default for completions
	o, n, e := s.options(p, sm, len(ids))
	if e != nil {
		return e
	}
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	g := &generation{s: s, p: p, model: req.Model, prompt: ids, opts: o, n: n, format: rf, logprobs: req.Logprobs != nil, top: top, stream: req.Stream, includeUsage: includeUsage}
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
		if len(texts) == 0 {
			return "", nil, badRequest("prompt", "invalid_value", "the prompt is empty (an empty list)")
		}
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
	n            int           // choices
	format       *outputFormat // response_format; nil for plain text
	tools        *toolSetup    // tools that may be called; nil for none
	logprobs     bool
	top          int
	chat, stream bool
	includeUsage bool
	echo         string
	// hideReasoning removes a leading <think>…</think> block (chat only).
	hideReasoning bool

	id      string
	created int64
	start   time.Time
	log     *reqLog
}

// run submits the generation's choices and answers, streaming or not.
func (g *generation) run(w http.ResponseWriter, r *http.Request) *apiError {
	g.start = time.Now()
	g.log = logOf(r)
	// The body has been read: lift its deadline, which would otherwise
	// end a long generation (the request has its own timeout).
	http.NewResponseController(w).SetReadDeadline(time.Time{})
	g.id = newID(map[bool]string{true: "chatcmpl-", false: "cmpl-"}[g.chat])
	g.created = g.start.Unix()
	ctx, cancel := g.s.requestContext(r)
	defer cancel()
	req := engine.Request{Base: g.p.base.eb, Prompt: g.prompt, Adapter: g.p.adapter, Hooks: g.p.hooks,
		Options: g.opts, Logprobs: g.logprobs, TopLogprobs: g.top, PrefixKey: g.p.prefixKey}
	if g.format != nil {
		req.Options.Constraint = g.format.constraint
	}
	if g.tools != nil && g.tools.constraint != nil {
		req.Options.Constraint = g.tools.constraint
	}
	if room := g.p.base.eng.Slots(g.p.base.eb) + g.p.base.eng.Stats().MaxQueue; g.n > room {
		return badRequest("n", "invalid_value", "n = %d is more than this server can hold at once (%d generation slots and queue places for this model)", g.n, room)
	}
	sts, err := g.p.base.eng.SubmitN(ctx, req, g.n)
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
	for _, st := range sts {
		defer st.Cancel()
	}
	if g.stream {
		return g.streamOut(w, sts)
	}
	return g.collect(w, sts)
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

// resultsUsage is the usage of a request's finished choices: the prompt
// counted once, the completions added up.
func resultsUsage(res []*engine.Result) usage {
	u := usage{PromptTokens: res[0].PromptTokens, PromptTokensDetails: promptTokensDetails{CachedTokens: res[0].CachedTokens}}
	for _, r := range res {
		u.CompletionTokens += r.CompletionTokens
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func (g *generation) finished(res *engine.Result) {
	g.s.metrics.generation(g.p.spec.Name, res, time.Since(g.start))
	if g.log != nil {
		g.log.promptTokens = res.PromptTokens // the choices share the prompt
		g.log.completionTokens += res.CompletionTokens
	}
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

// collect waits for every choice's whole answer. The engine ends the
// streams when the request's context ends (client gone, deadline), so Recv
// needs none.
func (g *generation) collect(w http.ResponseWriter, sts []*engine.Stream) *apiError {
	texts := make([]string, len(sts))
	lps := make([][]generate.LogprobEntry, len(sts))
	results := make([]*engine.Result, len(sts))
	for i, st := range sts {
		var text strings.Builder
		var t timing
		for results[i] == nil {
			c, err := st.Recv(context.Background())
			if err != nil {
				return nil
			}
			g.observe(&t, c)
			text.WriteString(c.Text)
			lps[i] = append(lps[i], c.Logprobs...)
			if res := c.Result; res != nil {
				g.finished(res)
				if res.Err != nil {
					return resultError(res)
				}
				if res.FinishReason == generate.FinishCancelled {
					return nil
				}
				results[i] = res
			}
		}
		texts[i] = text.String()
		if g.chat && g.hideReasoning {
			texts[i] = generate.StripReasoning(texts[i])
		}
	}
	u := resultsUsage(results)
	if g.chat {
		choices := make([]chatChoice, len(sts))
		for i := range sts {
			msg := assistantMessage{Role: "assistant", Content: &texts[i]}
			fr := results[i].FinishReason
			if g.tools != nil {
				tr := newToolReader(g.tools)
				content, _ := tr.feed(texts[i])
				rest, _ := tr.finish()
				content += rest
				msg.Content = &content
				for _, c := range tr.calls {
					msg.ToolCalls = append(msg.ToolCalls, messageToolCall{ID: c.ID, Type: "function", Function: messageToolFunction{Name: c.Name, Arguments: c.Arguments}})
				}
				if len(tr.calls) > 0 {
					if strings.TrimSpace(content) == "" {
						msg.Content = nil
					}
					if fr == generate.FinishStop {
						fr = finishToolCalls
					}
				}
			}
			choices[i] = chatChoice{Index: i, Message: msg, FinishReason: fr}
			if g.logprobs {
				choices[i].Logprobs = g.chatLogprobs(lps[i])
			}
		}
		writeJSON(w, http.StatusOK, chatCompletion{ID: g.id, Object: "chat.completion", Created: g.created, Model: g.model,
			SystemFingerprint: fingerprint, Choices: choices, Usage: u})
		return nil
	}
	choices := make([]completionChoice, len(sts))
	for i := range sts {
		fr := results[i].FinishReason
		choices[i] = completionChoice{Index: i, Text: g.echo + texts[i], FinishReason: &fr}
		if g.logprobs {
			choices[i].Logprobs = g.completionLogprobs(lps[i], len(g.echo))
		}
	}
	writeJSON(w, http.StatusOK, completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model,
		SystemFingerprint: fingerprint, Choices: choices, Usage: &u})
	return nil
}

// finishToolCalls is the finish_reason of a reply that calls tools.
const finishToolCalls = "tool_calls"

// fingerprint is the system_fingerprint of every response.
const fingerprint = "fp_masque"

// indexedChunk is a chunk of choice i.
type indexedChunk struct {
	i int
	c engine.Chunk
}

// streamOut sends the answer as server-sent events, the choices' chunks
// interleaved as they come, each with its index. A failed write (the
// client left) returns at once; the deferred Cancels free the slots.
func (g *generation) streamOut(w http.ResponseWriter, sts []*engine.Stream) *apiError {
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
	chunk := func(i int, delta chunkDelta, lp *chatLogprobs, finish *string) chatChunk {
		return chatChunk{ID: g.id, Object: "chat.completion.chunk", Created: g.created, Model: g.model, SystemFingerprint: fingerprint,
			Choices: []chunkChoice{{Index: i, Delta: delta, Logprobs: lp, FinishReason: finish}}}
	}
	textChunk := func(i int, text string, lp *completionLogprobs, finish *string) completion {
		return completion{ID: g.id, Object: "text_completion", Created: g.created, Model: g.model, SystemFingerprint: fingerprint,
			Choices: []completionChoice{{Index: i, Text: text, Logprobs: lp, FinishReason: finish}}}
	}
	empty := ""
	for i := range sts {
		if g.chat {
			if !send(chunk(i, chunkDelta{Role: "assistant", Content: &empty}, nil, nil)) {
				return nil
			}
		} else if g.echo != "" {
			if !send(textChunk(i, g.echo, nil, nil)) {
				return nil
			}
		}
	}
	// One reader per choice feeds the writer below.
	done := make(chan struct{})
	defer close(done)
	in := make(chan indexedChunk)
	for i, st := range sts {
		go func() {
			for {
				c, err := st.Recv(context.Background())
				if err != nil {
					return
				}
				select {
				case in <- indexedChunk{i, c}:
				case <-done:
					return
				}
				if c.Result != nil {
					return
				}
			}
		}()
	}
	var readers []*toolReader
	if g.chat && g.tools != nil {
		readers = make([]*toolReader, len(sts))
		for i := range readers {
			readers[i] = newToolReader(g.tools)
		}
	}
	// sendTools sends choice i's text and tool call deltas from its reader.
	sendTools := func(i int, text string, deltas []toolCallDelta, lp *chatLogprobs) bool {
		if text != "" || lp != nil {
			if !send(chunk(i, chunkDelta{Content: &text}, lp, nil)) {
				return false
			}
		}
		for _, d := range deltas {
			if !send(chunk(i, chunkDelta{ToolCalls: []toolCallDelta{d}}, nil, nil)) {
				return false
			}
		}
		return true
	}
	var hide []generate.ReasoningFilter
	if g.chat && g.hideReasoning {
		hide = make([]generate.ReasoningFilter, len(sts))
	}
	timings := make([]timing, len(sts))
	offsets := make([]int, len(sts))
	results := make([]*engine.Result, len(sts))
	for i := range offsets {
		offsets[i] = len(g.echo)
	}
	for left := len(sts); left > 0; {
		ic := <-in
		i, c := ic.i, ic.c
		g.observe(&timings[i], c)
		if c.Text != "" || len(c.Logprobs) > 0 {
			var ok bool
			if g.chat {
				var lp *chatLogprobs
				if g.logprobs {
					lp = g.chatLogprobs(c.Logprobs)
				}
				text := c.Text
				if hide != nil {
					text = hide[i].Feed(text)
				}
				switch {
				case readers != nil:
					text, deltas := readers[i].feed(text)
					ok = sendTools(i, text, deltas, lp)
				case text == "" && lp == nil:
					ok = true // held back as reasoning
				default:
					ok = send(chunk(i, chunkDelta{Content: &text}, lp, nil))
				}
			} else {
				var lp *completionLogprobs
				if g.logprobs {
					lp = g.completionLogprobs(c.Logprobs, offsets[i])
				}
				ok = send(textChunk(i, c.Text, lp, nil))
			}
			offsets[i] += len(c.Text)
			if !ok {
				return nil // deferred Cancels free the slots
			}
		}
		res := c.Result
		if res == nil {
			continue
		}
		left--
		results[i] = res
		g.finished(res)
		if res.Err != nil {
			send(map[string]any{"error": resultError(res)})
			return nil
		}
		if res.FinishReason == generate.FinishCancelled {
			return nil
		}
		fr := res.FinishReason
		if hide != nil {
			if text := hide[i].Flush(); text != "" {
				ok := true
				if readers != nil {
					t, deltas := readers[i].feed(text)
					ok = sendTools(i, t, deltas, nil)
				} else {
					ok = send(chunk(i, chunkDelta{Content: &text}, nil, nil))
				}
				if !ok {
					return nil
				}
			}
		}
		if readers != nil {
			text, deltas := readers[i].finish()
			if !sendTools(i, text, deltas, nil) {
				return nil
			}
			if len(readers[i].calls) > 0 && fr == generate.FinishStop {
				fr = finishToolCalls
			}
		}
		if g.chat {
			send(chunk(i, chunkDelta{}, nil, &fr))
		} else {
			send(textChunk(i, "", nil, &fr))
		}
	}
	if g.includeUsage {
		u := resultsUsage(results)
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
