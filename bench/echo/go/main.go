// Go TCP echo peer for bench/echo: standard library only, one goroutine per
// connection, a read/write loop with a 4 KiB buffer (what io.Copy does, but
// written out so that io.Copy's TCPConn.ReadFrom does not switch to splice(2)).
// Env: PORT (default 8091), listens on 127.0.0.1:$PORT; WORKERS sets GOMAXPROCS
// (default: Go's own default).
package main

import (
	"log"
	"net"
	"os"
	"runtime"
	"strconv"
	"time"
)

const bufSize = 4096

func serve(c *net.TCPConn) {
	defer c.Close()
	c.SetNoDelay(true) // Go's default already, stated for clarity
	buf := make([]byte, bufSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a real error
		}
	}
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8091"
	}
	if w := os.Getenv("WORKERS"); w != "" {
		n, err := strconv.Atoi(w)
		if err != nil || n < 1 {
			log.Fatalf("bad WORKERS=%q", w)
		}
		runtime.GOMAXPROCS(n)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: mustPort(port)})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			log.Print("accept: ", err)
			time.Sleep(10 * time.Millisecond) // e.g. EMFILE: do not spin
			continue
		}
		go serve(c)
	}
}

func mustPort(s string) int {
	p, err := strconv.Atoi(s)
	if err != nil || p < 1 || p > 65535 {
		log.Fatalf("bad PORT=%q", s)
	}
	return p
}
