package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Limits of the control socket: a request is one line of at most
// MaxRequest bytes that must arrive within RequestTimeout of the connect;
// at most MaxConns connections are served at once (more wait in the
// kernel's backlog, with no goroutine of ours), and an answer that the
// client does not read within RequestTimeout is dropped.
const (
	MaxRequest     = 64 << 10
	MaxConns       = 64
	RequestTimeout = 5 * time.Second
)

// ErrRequestTooLong says that a request went past MaxRequest bytes
// without its newline.
var ErrRequestTooLong = errors.New("request over 64 KiB")

// ReadRequest reads and decodes one request: a JSON object on one line
// (the connection's end may stand for the newline). It never reads more
// than MaxRequest+1 bytes.
func ReadRequest(r io.Reader) (Request, error) {
	var req Request
	line, err := bufio.NewReaderSize(io.LimitReader(r, MaxRequest+1), 4096).ReadBytes('\n')
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && len(line) > MaxRequest:
		return req, fmt.Errorf("bad request: %w", ErrRequestTooLong)
	case errors.Is(err, io.EOF) && len(bytes.TrimSpace(line)) == 0:
		return req, errors.New("bad request: empty")
	case errors.Is(err, io.EOF):
	default:
		return req, fmt.Errorf("bad request: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("bad request: %w", err)
	}
	if dec.More() {
		return Request{}, errors.New("bad request: more than one JSON value")
	}
	if req.Op == "" {
		return Request{}, errors.New("bad request: no op")
	}
	return req, nil
}
