// Command recorder is the application of test/l7's end-to-end spelling
// test (spelling_e2e_test.go): it listens on $HOST:$PORT, as the local
// adapter says, and for every request appends one JSON line to the file
// $RECORD (the method, the request target exactly as it came, and the
// headers) before it answers with the same JSON. The test reads the file
// to learn every request that reached the application.
package main

import (
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
)

type seen struct {
	Method  string      `json:"method"`
	Target  string      `json:"target"`
	Headers http.Header `json:"headers"`
}

func main() {
	f, err := os.OpenFile(os.Getenv("RECORD"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		log.Fatalf("recorder: opening $RECORD: %v", err)
	}
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		line, err := json.Marshal(seen{Method: r.Method, Target: r.RequestURI, Headers: r.Header})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		mu.Lock()
		_, err = f.Write(append(line, '\n'))
		mu.Unlock()
		if err != nil {
			http.Error(w, "recorder: writing $RECORD: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(line)
	})
	addr := net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT"))
	log.Printf("recorder: listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, h))
}
