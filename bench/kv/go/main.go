// The Go peer of asyncd's kv module for bench/kv/run.sh: the same HTTP
// interface (PUT, GET, HEAD, DELETE /kv/KEY, GET /kv/?prefix=, If-Match
// left out: the bench does not use it) over a map under sync.RWMutex,
// with the same durability policy: every change is appended to a log
// file, in the kv module's record format, before its 2xx is sent (the
// record has reached write(2)), and a goroutine fsyncs the file every
// SYNC_MS (100) milliseconds.
//
// Env: PORT (8082), LOG (the log file, /dev/shm/kv-go.log), SYNC_MS (100),
// MAX_VALUE (1048576).  GOMAXPROCS is honoured by the Go runtime itself.
package main

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type value struct {
	data    []byte // immutable once stored
	version uint64
}

type store struct {
	mu   sync.RWMutex // guards m and next
	m    map[string]value
	next uint64

	logMu sync.Mutex // guards f's writes; taken under mu so the log keeps the table's order
	f     *os.File
	dirty bool // under logMu: written since the last fsync
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	recPut = 1
	recDel = 2
)

// record encodes one change as modules/kv/store.h lays it out.
func record(typ byte, seq uint64, key string, val []byte) []byte {
	body := 17 + len(key) + len(val)
	b := make([]byte, 8+body)
	binary.LittleEndian.PutUint32(b[4:], uint32(body))
	b[8] = typ
	binary.LittleEndian.PutUint64(b[9:], seq)
	binary.LittleEndian.PutUint32(b[17:], uint32(len(key)))
	binary.LittleEndian.PutUint32(b[21:], uint32(len(val)))
	copy(b[25:], key)
	copy(b[25+len(key):], val)
	binary.LittleEndian.PutUint32(b[0:], crc32.Checksum(b[4:], castagnoli))
	return b
}

// change applies a put (val != nil) or delete; it returns the version,
// or ok false for the delete of a missing key.
func (s *store) change(key string, val []byte) (uint64, bool, error) {
	s.mu.Lock()
	var rec []byte
	seq := s.next
	if val == nil {
		if _, ok := s.m[key]; !ok {
			s.mu.Unlock()
			return 0, false, nil
		}
		delete(s.m, key)
		rec = record(recDel, seq, key, nil)
	} else {
		s.m[key] = value{val, seq}
		rec = record(recPut, seq, key, val)
	}
	s.next++
	s.logMu.Lock()
	s.mu.Unlock()
	_, err := s.f.Write(rec)
	s.dirty = true
	s.logMu.Unlock()
	return seq, true, err
}

func (s *store) flusher(every time.Duration) {
	for range time.Tick(every) {
		s.logMu.Lock()
		dirty := s.dirty
		s.dirty = false
		s.logMu.Unlock()
		if dirty {
			if err := s.f.Sync(); err != nil {
				log.Printf("fsync: %v", err)
			}
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8082"
	}
	path := os.Getenv("LOG")
	if path == "" {
		path = "/dev/shm/kv-go.log"
	}
	maxValue := int64(envInt("MAX_VALUE", 1048576))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0644)
	if err != nil {
		log.Fatal(err)
	}
	f.Write([]byte("asynckv\x01"))
	s := &store{m: make(map[string]value), next: 1, f: f}
	go s.flusher(time.Duration(envInt("SYNC_MS", 100)) * time.Millisecond)

	handler := func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.URL.Path, "/kv/")
		if !strings.HasPrefix(r.URL.Path, "/kv/") {
			http.NotFound(w, r)
			return
		}
		if key == "" {
			if r.Method != "GET" && r.Method != "HEAD" {
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, "the key list is read-only", 405)
				return
			}
			prefix := r.URL.Query().Get("prefix")
			s.mu.RLock()
			keys := make([]string, 0, len(s.m))
			for k := range s.m {
				if strings.HasPrefix(k, prefix) {
					keys = append(keys, k)
				}
			}
			s.mu.RUnlock()
			sort.Strings(keys)
			b, _ := json.Marshal(keys)
			w.Header().Set("Content-Type", "application/json")
			w.Write(append(b, '\n'))
			return
		}
		switch r.Method {
		case "GET", "HEAD":
			s.mu.RLock()
			v, ok := s.m[key]
			s.mu.RUnlock()
			if !ok {
				http.Error(w, "no such key", 404)
				return
			}
			h := w.Header()
			h["Etag"] = []string{"\"" + strconv.FormatUint(v.version, 10) + "\""}
			h["Content-Type"] = []string{"application/octet-stream"}
			w.Write(v.data)
		case "PUT":
			body, err := io.ReadAll(io.LimitReader(r.Body, maxValue+1))
			if err != nil {
				return
			}
			if int64(len(body)) > maxValue {
				http.Error(w, "value larger than MAX_VALUE", 413)
				return
			}
			ver, _, err := s.change(key, body)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			w.Header()["Etag"] = []string{"\"" + strconv.FormatUint(ver, 10) + "\""}
			w.WriteHeader(204)
		case "DELETE":
			_, ok, err := s.change(key, nil)
			if err != nil {
				http.Error(w, err.Error(), 500)
			} else if !ok {
				http.Error(w, "no such key", 404)
			} else {
				w.WriteHeader(204)
			}
		default:
			w.Header().Set("Allow", "GET, HEAD, PUT, DELETE")
			http.Error(w, "method not allowed", 405)
		}
	}
	srv := &http.Server{
		Addr:        "127.0.0.1:" + port,
		Handler:     http.HandlerFunc(handler),
		IdleTimeout: 30 * time.Minute,
	}
	log.Fatal(srv.ListenAndServe())
}
