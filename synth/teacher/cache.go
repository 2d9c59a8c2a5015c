package teacher

import (
	"fmt"

	"github.com/masque-ai/masque/jsonlstore"
)

// Cache is the on-disk response cache: a jsonlstore file of
// {"key":..., "response":{...}} lines (see package jsonlstore for its crash
// safety: a kill -9 loses at most the line being written, torn lines are
// skipped and counted, nothing is rewritten, several processes may append).
// The first response stored under a key is kept.
type Cache struct {
	s *jsonlstore.Store
	// Skipped counts the unreadable lines found when the cache was opened.
	Skipped int
}

// OpenCache opens (creating if needed) the cache file at path.
func OpenCache(path string) (*Cache, error) {
	s, err := jsonlstore.OpenWith(path, jsonlstore.Options{Field: "response"})
	if err != nil {
		return nil, fmt.Errorf("the response cache: %w", err)
	}
	return &Cache{s: s, Skipped: s.Skipped}, nil
}

// Path is the cache file.
func (c *Cache) Path() string { return c.s.Path() }

// Len is the number of cached responses.
func (c *Cache) Len() int { return c.s.Len() }

// Has reports whether key is cached.
func (c *Cache) Has(key string) bool { return c.s.Has(key) }

// Get returns the cached response for key (with Cached set).
func (c *Cache) Get(key string) (*Response, bool) {
	var r Response
	if !c.s.Get(key, &r) {
		return nil, false
	}
	r.Cached = true
	return &r, true
}

// Put stores r under key (a key already cached is left as it is).
func (c *Cache) Put(key string, r *Response) error {
	_, err := c.s.Add(key, r)
	return err
}

// Close closes the file.
func (c *Cache) Close() error { return c.s.Close() }
