package teacher

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Cache is an on-disk response cache: an append-only JSONL file of
// {"key":..., "response":{...}} lines, indexed in memory by key (only the
// offsets are kept in memory; responses are read back from the file).
//
// Every Put is one write(2) of a whole line, so a crash or kill -9 loses at
// most the line being written. On opening, lines that cannot be read (a torn
// last line, or anything else) are skipped and counted in Skipped, and a
// torn last line is closed with a newline so that later lines start clean;
// nothing already in the file is ever rewritten. Several processes may
// append to the same cache file; each sees the others' entries only after
// reopening it.
type Cache struct {
	path string
	// Sync, when true, flushes the file to stable storage after every Put
	// (protection against power loss, not needed against process crashes).
	Sync bool
	// Skipped counts the unreadable lines found when the cache was opened.
	Skipped int

	mu    sync.Mutex
	f     *os.File
	index map[string]cacheEntry
}

type cacheEntry struct {
	off int64
	n   int
}

type cacheLine struct {
	Key      string    `json:"key"`
	Response *Response `json:"response"`
}

// OpenCache opens (creating if needed) the cache file at path.
func OpenCache(path string) (*Cache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the response cache: %w", err)
	}
	c := &Cache{path: path, f: f, index: map[string]cacheEntry{}}
	br := bufio.NewReaderSize(f, 1<<16)
	var off int64
	torn := false
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if line[len(line)-1] != '\n' {
				torn = true
				c.Skipped++
			} else {
				var cl cacheLine
				if json.Unmarshal(line, &cl) == nil && cl.Key != "" && cl.Response != nil {
					c.index[cl.Key] = cacheEntry{off, len(line)}
				} else {
					c.Skipped++
				}
			}
			off += int64(len(line))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading the response cache %s: %w", path, err)
		}
	}
	if torn {
		if _, err := f.Write([]byte("\n")); err != nil {
			f.Close()
			return nil, fmt.Errorf("repairing the response cache %s: %w", path, err)
		}
	}
	return c, nil
}

// Path is the cache file.
func (c *Cache) Path() string { return c.path }

// Len is the number of cached responses.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.index)
}

// Has reports whether key is cached.
func (c *Cache) Has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.index[key]
	return ok
}

// Get returns the cached response for key (with Cached set).
func (c *Cache) Get(key string) (*Response, bool) {
	c.mu.Lock()
	e, ok := c.index[key]
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	buf := make([]byte, e.n)
	if _, err := c.f.ReadAt(buf, e.off); err != nil {
		return nil, false
	}
	var cl cacheLine
	if json.Unmarshal(buf, &cl) != nil || cl.Response == nil || cl.Key != key {
		return nil, false
	}
	cl.Response.Cached = true
	return cl.Response, true
}

// Put stores r under key (a key already cached is left as it is).
func (c *Cache) Put(key string, r *Response) error {
	data, err := json.Marshal(cacheLine{Key: key, Response: r})
	if err != nil {
		return err
	}
	data = append(data, '\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.index[key]; ok {
		return nil
	}
	if _, err := c.f.Write(data); err != nil {
		return fmt.Errorf("writing the response cache: %w", err)
	}
	end, err := c.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("writing the response cache: %w", err)
	}
	c.index[key] = cacheEntry{end - int64(len(data)), len(data)}
	if c.Sync {
		return c.f.Sync()
	}
	return nil
}

// Close closes the file.
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return nil
	}
	err := c.f.Close()
	c.f = nil
	return err
}
