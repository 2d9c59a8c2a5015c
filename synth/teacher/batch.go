package teacher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/masque-ai/masque/openaiclient"
)

// BatchURL is the endpoint every batch request names.
const BatchURL = "/v1/chat/completions"

// BatchRequest is one line of an OpenAI Batch API input file.
type BatchRequest struct {
	CustomID string            `json:"custom_id"` // the request Key
	Method   string            `json:"method"`    // "POST"
	URL      string            `json:"url"`       // BatchURL
	Body     openaiclient.Body `json:"body"`      // the chat completions body
}

// Recorder is a Teacher for exporting a batch: a request whose response is
// in Cache is answered from it; any other request is written once (by Key,
// which becomes its custom_id) to the batch file and fails with a
// KindDeferred error. It is safe for concurrent use.
type Recorder struct {
	// Cache may be nil.
	Cache *Cache

	mu   sync.Mutex
	w    io.Writer
	seen map[string]bool
	err  error
}

// NewRecorder writes batch request lines to w.
func NewRecorder(w io.Writer, cache *Cache) *Recorder {
	return &Recorder{Cache: cache, w: w, seen: map[string]bool{}}
}

// Complete answers from the cache or records req.
func (r *Recorder) Complete(ctx context.Context, req Request) (*Response, error) {
	key := Key(req)
	if r.Cache != nil {
		if resp, ok := r.Cache.Get(key); ok {
			return resp, nil
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	if !r.seen[key] {
		data, err := json.Marshal(BatchRequest{CustomID: key, Method: "POST", URL: BatchURL, Body: req.Body()})
		if err != nil {
			return nil, err
		}
		if _, err := r.w.Write(append(data, '\n')); err != nil {
			r.err = fmt.Errorf("writing the batch file: %w", err)
			return nil, r.err
		}
		r.seen[key] = true
	}
	return nil, &openaiclient.Error{Kind: KindDeferred, Msg: "request written to the batch file as " + key}
}

// Recorded is the number of distinct requests written.
func (r *Recorder) Recorded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// CacheOnly is a Teacher that answers only from a cache, for importing
// batch results: a request that is not cached fails with KindDeferred, or
// with KindBatchFailed when Failed holds an error for its key.
type CacheOnly struct {
	Cache *Cache // holds the imported responses
	// Failed maps custom_id (request key) to the error the batch reported.
	Failed map[string]string
}

// Complete answers from the cache.
func (c *CacheOnly) Complete(ctx context.Context, req Request) (*Response, error) {
	key := Key(req)
	if resp, ok := c.Cache.Get(key); ok {
		return resp, nil
	}
	if msg, ok := c.Failed[key]; ok {
		return nil, &openaiclient.Error{Kind: KindBatchFailed, Msg: msg}
	}
	return nil, &openaiclient.Error{Kind: KindDeferred, Msg: "no batch result for request " + key}
}

// ImportStats describes what ImportBatchResults read.
type ImportStats struct {
	// Imported responses were added to the cache; AlreadyCached were there.
	Imported, AlreadyCached int
	// Failed maps custom_id to the error the batch reported for it.
	Failed map[string]string
	// Problems are lines that could not be read, as "file:line: message".
	Problems []string
}

type batchResult struct {
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// ImportBatchResults reads an OpenAI Batch API results (or errors) file,
// lines {"custom_id", "response": {"status_code", "body"}, "error"}, and
// puts every successful chat completion into cache under its custom_id.
// name is used in problems.
func ImportBatchResults(r io.Reader, name string, cache *Cache) (ImportStats, error) {
	st := ImportStats{Failed: map[string]string{}}
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		data, err := br.ReadBytes('\n')
		if t := bytes.TrimSpace(data); len(t) > 0 {
			problem := func(format string, a ...any) {
				st.Problems = append(st.Problems, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, a...)))
			}
			var res batchResult
			switch {
			case json.Unmarshal(t, &res) != nil:
				problem("malformed JSON")
			case res.CustomID == "":
				problem("no custom_id")
			case res.Error != nil && res.Error.Message != "":
				st.Failed[res.CustomID] = res.Error.Code + ": " + res.Error.Message
			case res.Response == nil:
				problem("no response")
			case res.Response.StatusCode != 200:
				msg := fmt.Sprintf("HTTP %d", res.Response.StatusCode)
				if m := openaiclient.BodyError(res.Response.Body); m != "" {
					msg += ": " + m
				}
				st.Failed[res.CustomID] = msg
			default:
				r, perr := openaiclient.ParseResponse(res.Response.Body)
				if perr != nil {
					problem("%v", perr)
					break
				}
				resp := fromAPI(r)
				if cache.Has(res.CustomID) {
					st.AlreadyCached++
					break
				}
				if err := cache.Put(res.CustomID, resp); err != nil {
					return st, err
				}
				delete(st.Failed, res.CustomID)
				st.Imported++
			}
		}
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("reading %s: %w", name, err)
		}
	}
}
