package main

import (
	"crypto/sha256"
	"io"
	"sync"
)

func sha256sum(b []byte) [32]byte { return sha256.Sum256(b) }

// syncWriter serialises writes from the server's goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
