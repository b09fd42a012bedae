package main

import (
	"encoding/json"
	"fmt"
	"testing"
)

// benchFile is an instances file of n records shaped as the control-plane
// benchmark's (test/bench/runner), with record n/2's mesh port at port.
func benchFile(b *testing.B, n, port int) []byte {
	type rec struct {
		ID      string         `json:"id"`
		Service string         `json:"service"`
		Address string         `json:"address"`
		Ports   map[string]int `json:"ports"`
		Health  string         `json:"health"`
	}
	recs := make([]rec, n)
	for i := range recs {
		recs[i] = rec{ID: fmt.Sprintf("svc-%04d-%d", i/10, i%10), Service: fmt.Sprintf("svc-%04d", i/10),
			Address: fmt.Sprintf("127.%d.%d.%d", 1+i/62500, i/250%250, 1+i%250), Health: "passing", Ports: map[string]int{"app": 8080, "mesh": 20000}}
	}
	recs[n/2].Ports["mesh"] = port
	data, err := json.Marshal(map[string]any{"instances": recs})
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkParse: a file of 10,000 records parsed from nothing, and again
// after one record changed (what the adapter does on each change).
func BenchmarkParse(b *testing.B) {
	files := [][]byte{benchFile(b, 10000, 20000), benchFile(b, 10000, 20001)}
	b.Run("all", func(b *testing.B) {
		b.SetBytes(int64(len(files[0])))
		for b.Loop() {
			if _, _, err := parse(files[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-changed", func(b *testing.B) {
		var p parser
		b.SetBytes(int64(len(files[0])))
		i := 0
		for b.Loop() {
			if _, _, err := p.parse(files[i%2]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
