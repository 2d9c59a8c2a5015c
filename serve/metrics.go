package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/masque-ai/masque/serve/engine"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	httpRequests *prometheus.CounterVec   // endpoint, code
	httpDuration *prometheus.HistogramVec // endpoint
	generations  *prometheus.CounterVec   // persona, finish_reason
	tokens       *prometheus.CounterVec   // persona, kind (prompt, completion)
	ttft         prometheus.Histogram
	tokenLatency prometheus.Histogram
	queueWait    prometheus.Histogram
	batchSeqs    *prometheus.HistogramVec // base
	batchTokens  *prometheus.HistogramVec // base
	stepDuration *prometheus.HistogramVec // base
	rejected     prometheus.Counter
	stalled      prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "masque_http_requests_total", Help: "HTTP requests by endpoint and status code."}, []string{"endpoint", "code"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "masque_http_request_duration_seconds", Help: "HTTP request latency, streams included, by endpoint.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14)}, []string{"endpoint"})
	m.generations = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "masque_generations_total", Help: "Finished generations by persona and finish reason (stop, length, cancelled, error)."}, []string{"persona", "finish_reason"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "masque_tokens_total", Help: "Tokens by persona and kind (prompt or completion)."}, []string{"persona", "kind"})
	m.ttft = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "masque_time_to_first_token_seconds", Help: "Time from request to first generated token, queueing included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)})
	m.tokenLatency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "masque_inter_token_latency_seconds", Help: "Time between generated tokens of a request.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	m.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "masque_queue_wait_seconds", Help: "Time requests waited for a generation slot.",
		Buckets: prometheus.ExponentialBuckets(0.001, 3, 12)})
	m.batchSeqs = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "masque_batch_sequences", Help: "Sequences per forward step.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}, []string{"base"})
	m.batchTokens = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "masque_batch_tokens", Help: "Tokens per forward step.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12)}, []string{"base"})
	m.stepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "masque_step_duration_seconds", Help: "Duration of forward steps.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"base"})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "masque_rejected_requests_total", Help: "Requests refused with 429 because the queue was full."})
	m.stalled = prometheus.NewCounter(prometheus.CounterOpts{Name: "masque_stalled_clients_total", Help: "Clients dropped because they read nothing for the stall timeout (a write blocked that long)."})
	// The engine gauges are totals over every base (each base's own
	// figures are the masque_base_* series of memoryCollector).
	stats := func(f func(engine.Stats) float64) func() float64 {
		return func() float64 {
			v := 0.0
			for _, b := range s.bases {
				if b.eng != nil {
					v += f(b.eng.Stats())
				}
			}
			return v
		}
	}
	reg.MustRegister(m.httpRequests, m.httpDuration, m.generations, m.tokens, m.ttft, m.tokenLatency, m.queueWait,
		m.batchSeqs, m.batchTokens, m.stepDuration, m.rejected, m.stalled,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_queue_depth", Help: "Requests waiting for a generation slot."}, stats(func(st engine.Stats) float64 { return float64(st.Queued) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_active_sequences", Help: "Sequences generating now (slots in use)."}, stats(func(st engine.Stats) float64 { return float64(st.Active) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_slots", Help: "The most sequences that generate at once."}, stats(func(st engine.Stats) float64 { return float64(st.MaxSeqs) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_queue_capacity", Help: "The most requests that may wait."}, stats(func(st engine.Stats) float64 { return float64(st.MaxQueue) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_kv_cache_reserved_bytes", Help: "KV cache memory reserved by running and pooled sequences."}, stats(func(st engine.Stats) float64 { return float64(st.KVReserved) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_kv_cache_used_bytes", Help: "KV cache memory the running sequences hold."}, stats(func(st engine.Stats) float64 { return float64(st.KVUsed) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_kv_cache_budget_bytes", Help: "The bound on KV cache memory."}, stats(func(st engine.Stats) float64 { return float64(st.KVBudget) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_prompt_cache_bytes", Help: "Memory of the prompt (prefix) cache: keys and values of recent prompts that later requests resume from."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixBytes) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_prompt_cache_budget_bytes", Help: "The bound on prompt cache memory (0: disabled)."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixBudget) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "masque_prompt_cache_entries", Help: "Prompts held in the prompt cache."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixEntries) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "masque_prompt_cache_hits_total", Help: "Requests that resumed from a cached prompt prefix."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixHits) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "masque_prompt_cache_tokens_total", Help: "Prompt tokens taken from the prompt cache instead of being run."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixTokens) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "masque_prompt_cache_idle_compacted_total", Help: "Prompt cache entries of idle sessions cut to their shared prefix or dropped (--session-idle)."}, stats(func(st engine.Stats) float64 { return float64(st.PrefixIdleCompacted) })),
		&memoryCollector{s: s},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m
}

func (m *metrics) request(endpoint string, code int, d time.Duration) {
	m.httpRequests.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.httpDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (m *metrics) step(base string, seqs, tokens int, d time.Duration) {
	m.batchSeqs.WithLabelValues(base).Observe(float64(seqs))
	m.batchTokens.WithLabelValues(base).Observe(float64(tokens))
	m.stepDuration.WithLabelValues(base).Observe(d.Seconds())
}

// dropPersona removes the series of a removed persona (and of its own
// base model, when it had one), so that personas added and removed at
// run time do not grow /metrics for ever.
func (m *metrics) dropPersona(name, base string, ownBase bool) {
	m.generations.DeletePartialMatch(prometheus.Labels{"persona": name})
	m.tokens.DeletePartialMatch(prometheus.Labels{"persona": name})
	if ownBase {
		for _, v := range []*prometheus.HistogramVec{m.batchSeqs, m.batchTokens, m.stepDuration} {
			v.DeletePartialMatch(prometheus.Labels{"base": base})
		}
	}
}

func (m *metrics) generation(persona string, res *engine.Result, d time.Duration) {
	reason := res.FinishReason
	if res.Err != nil {
		reason = "error"
	}
	m.generations.WithLabelValues(persona, reason).Inc()
	m.tokens.WithLabelValues(persona, "prompt").Add(float64(res.PromptTokens))
	m.tokens.WithLabelValues(persona, "completion").Add(float64(res.CompletionTokens))
	m.queueWait.Observe(res.Queued.Seconds())
}

// memoryCollector reports the memory of every persona beyond the shared
// base (masks, adapters, own models) and of the base models.
type memoryCollector struct{ s *Server }

var (
	personaMemDesc = prometheus.NewDesc("masque_persona_memory_bytes", "Memory a persona holds beyond its shared base model (bit-packed masks, LoRA weights, or its own model's weights).", []string{"persona", "kind"}, nil)
	baseMemDesc    = prometheus.NewDesc("masque_base_memory_bytes", "Memory of a base model's weights, shared by the personas on it.", []string{"base"}, nil)
	personasDesc   = prometheus.NewDesc("masque_personas", "Personas served.", nil, nil)
	// Each base's engine (every base has its own batches, slots, queue and
	// share of the KV and prompt cache memory).
	baseKVBudgetDesc   = prometheus.NewDesc("masque_base_kv_cache_budget_bytes", "A base model's share of the KV cache memory.", []string{"base"}, nil)
	baseKVReservedDesc = prometheus.NewDesc("masque_base_kv_cache_reserved_bytes", "KV cache memory reserved by a base model's running and pooled sequences.", []string{"base"}, nil)
	baseSlotBytesDesc  = prometheus.NewDesc("masque_base_sequence_kv_bytes", "KV cache memory of one sequence of a base model (its whole context).", []string{"base"}, nil)
	baseSlotsDesc      = prometheus.NewDesc("masque_base_slots", "The most sequences of a base model that generate at once (its KV share permitting).", []string{"base"}, nil)
	baseActiveDesc     = prometheus.NewDesc("masque_base_active_sequences", "Sequences of a base model generating now.", []string{"base"}, nil)
	baseQueuedDesc     = prometheus.NewDesc("masque_base_queue_depth", "Requests waiting for a slot of a base model.", []string{"base"}, nil)
	basePromptDesc     = prometheus.NewDesc("masque_base_prompt_cache_budget_bytes", "A base model's share of the prompt cache memory.", []string{"base"}, nil)
)

// Describe implements prometheus.Collector.
func (c *memoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- personaMemDesc
	ch <- baseMemDesc
	ch <- personasDesc
	for _, d := range []*prometheus.Desc{baseKVBudgetDesc, baseKVReservedDesc, baseSlotBytesDesc, baseSlotsDesc, baseActiveDesc, baseQueuedDesc, basePromptDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *memoryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	for _, b := range s.Bases() {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, b.ID)
		}
		g(baseMemDesc, float64(b.WeightBytes))
		g(baseKVBudgetDesc, float64(b.KVBudget))
		g(baseKVReservedDesc, float64(b.KVReserved))
		g(baseSlotBytesDesc, float64(b.SlotBytes))
		g(baseSlotsDesc, float64(b.Slots))
		g(baseActiveDesc, float64(b.Active))
		g(baseQueuedDesc, float64(b.Queued))
		g(basePromptDesc, float64(b.PromptCacheBudget))
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(personasDesc, prometheus.GaugeValue, float64(len(s.personas)))
	for name, p := range s.personas {
		ch <- prometheus.MustNewConstMetric(personaMemDesc, prometheus.GaugeValue, float64(p.bytes), name, p.spec.Kind())
	}
}
