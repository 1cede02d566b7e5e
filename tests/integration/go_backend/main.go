// An application server in Go (net/http, keep-alive) for the proxy tests:
// on 127.0.0.1, port 0; prints "port N" once it listens.
//
//	go_backend NAME
//
//	GET  /id        "backend NAME" (and X-Backend: NAME)
//	GET  /conns     the connections accepted so far
//	GET  /health    200
//	GET  /headers   the request's fields, one "Name: value" per line
//	POST /echo      the body back (chunked past 4 KiB: Go sends no length)
//	GET  /big?n=N   N bytes of 'x', chunked
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
)

func main() {
	name := os.Args[1]
	var conns int64
	mux := http.NewServeMux()
	mux.HandleFunc("/id", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		fmt.Fprintf(w, "backend %s", name)
	})
	mux.HandleFunc("/conns", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", atomic.LoadInt64(&conns))
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for k, vs := range r.Header {
			for _, v := range vs {
				lines = append(lines, k+": "+v+"\n")
			}
		}
		sort.Strings(lines)
		io.WriteString(w, "Host: "+r.Host+"\n"+strings.Join(lines, ""))
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// read whole first, as the proxy sends the whole request before
		// it reads the answer (an echo that wrote as it read could fill
		// both directions' buffers)
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(data)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		chunk := []byte(strings.Repeat("x", 65536))
		for n > 0 {
			k := n
			if k > len(chunk) {
				k = len(chunk)
			}
			w.Write(chunk[:k])
			n -= k
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler: mux,
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				atomic.AddInt64(&conns, 1)
			}
		},
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	srv.Serve(ln)
}
