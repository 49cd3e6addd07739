// Go peer: net/http hello server (GET / -> "Hello, World!"), or with `--mode echo` a TCP
// server that writes back what it reads (a goroutine per connection).
//
//	go build -o go-http . && ./go-http --addr 127.0.0.1:8080 --workers 2 [--mode http|echo]
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: leave as is)")
	mode := flag.String("mode", "http", "http or echo")
	flag.Parse()
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}
	if *mode == "echo" {
		serveEcho(*addr)
		return
	}
	body := []byte("Hello, World!")
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// serveEcho accepts connections and copies each one's input back to it.
func serveEcho(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func(c net.Conn) {
			defer c.Close()
			io.Copy(c, c)
		}(c)
	}
}
