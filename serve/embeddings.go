package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"net/http"

	"github.com/masque-ai/masque/openaiclient"
	"github.com/masque-ai/masque/style"
)

// maxEmbeddingInputs is the most texts one embeddings request may hold
// (OpenAI's limit).
const maxEmbeddingInputs = 2048

// embeddingRequest is OpenAI's POST /v1/embeddings body. Input is a string
// or a list of strings (token-id inputs are refused).
type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     *int            `json:"dimensions"`
	User           string          `json:"user"`
}

// base64Embedding is one embedding as base64 of little-endian float32s.
type base64Embedding struct {
	Object    string `json:"object"`
	Index     int    `json:"index"`
	Embedding string `json:"embedding"`
}

// handleEmbeddings answers POST /v1/embeddings with the base model's
// sentence embeddings: the mean of the last hidden state over each text's
// tokens, unit length (style.ModelEmbedder, the same numbers as masque
// embed). Only the base model id is accepted: personas' prompts, masks and
// adapters do not apply to embeddings. The work runs on the request's
// goroutine, beside the generation engine.
func (s *Server) handleEmbeddings(w http.ResponseWriter, r *http.Request) *apiError {
	var req embeddingRequest
	if e := decodeBody(r, &req); e != nil {
		return e
	}
	if req.Model == "" {
		return badRequest("model", "missing_required_parameter", "you must provide a model parameter (the base model: %q)", s.opts.BaseID)
	}
	if req.Model != s.opts.BaseID {
		s.mu.RLock()
		_, isPersona := s.personas[req.Model]
		s.mu.RUnlock()
		if !isPersona {
			return modelNotFound(req.Model)
		}
		return badRequest("model", "model_not_supported", "embeddings come from the base model: use model %q (a persona's prompt, mask or adapter does not apply to embeddings)", s.opts.BaseID)
	}
	var texts []string
	if len(bytes.TrimSpace(req.Input)) == 0 {
		return badRequest("input", "missing_required_parameter", "you must provide an input parameter")
	}
	var one string
	if err := json.Unmarshal(req.Input, &one); err == nil {
		texts = []string{one}
	} else if err := json.Unmarshal(req.Input, &texts); err != nil {
		return badRequest("input", "invalid_type", "'input' must be a string or a list of strings (token-id inputs are not supported)")
	}
	if len(texts) == 0 || len(texts) > maxEmbeddingInputs {
		return badRequest("input", "invalid_value", "'input' must hold 1 to %d texts, not %d", maxEmbeddingInputs, len(texts))
	}
	for i, t := range texts {
		if len(t) > s.opts.MaxMessageBytes {
			return badRequest("input", "string_above_max_length", "input %d is %d bytes, more than the limit of %d", i, len(t), s.opts.MaxMessageBytes)
		}
	}
	switch req.EncodingFormat {
	case "", "float", "base64":
	default:
		return badRequest("encoding_format", "invalid_value", "'encoding_format' must be \"float\" or \"base64\", not %q", req.EncodingFormat)
	}
	if req.Dimensions != nil && *req.Dimensions != s.opts.Base.Model.Config.Hidden {
		return badRequest("dimensions", "invalid_value", "this model's embeddings have %d dimensions; it cannot return %d", s.opts.Base.Model.Config.Hidden, *req.Dimensions)
	}
	emb := &style.ModelEmbedder{Model: s.opts.Base.Model, Tokenizer: s.opts.Base.Tokenizer, Name: s.opts.BaseID}
	tokens := 0
	for i, t := range texts {
		ids, _, err := emb.Tokens(t)
		if err != nil {
			return badRequest("input", "invalid_value", "input %d: %v", i, err)
		}
		tokens += len(ids)
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()
	vs, err := emb.Embed(ctx, texts)
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return newError(http.StatusGatewayTimeout, typeTimeout, "timeout", "", "the request timed out or was cancelled")
		}
		return newError(http.StatusInternalServerError, typeServer, "", "", "embedding failed: %v", err)
	}
	usage := openaiclient.EmbeddingUsage{PromptTokens: tokens, TotalTokens: tokens}
	if req.EncodingFormat == "base64" {
		data := make([]base64Embedding, len(vs))
		for i, v := range vs {
			b := make([]byte, 4*len(v))
			for j, x := range v {
				binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(x))
			}
			data[i] = base64Embedding{Object: "embedding", Index: i, Embedding: base64.StdEncoding.EncodeToString(b)}
		}
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": req.Model, "usage": usage})
		return nil
	}
	resp := openaiclient.EmbeddingResponse{Object: "list", Model: req.Model, Usage: usage}
	for i, v := range vs {
		resp.Data = append(resp.Data, openaiclient.EmbeddingData{Object: "embedding", Index: i, Embedding: v})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
