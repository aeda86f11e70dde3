// doq-client: an independent DNS-over-QUIC (RFC 9250) client used by lexa's
// tests. It is built on quic-go and miekg/dns, and shares no code with lexa.
//
// Each of -conns connections (one after another, or all at once with -parallel)
// sends -count queries one after the other, each on a new bidirectional stream: 2-byte length prefix, message ID 0 (unless -id),
// then FIN. It prints every answer in dig-like presentation and ends with
// "queries=N ok=N failed=N"; it exits 1 if any query failed.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/quic-go/quic-go"
)

var (
	server     = flag.String("server", "127.0.0.1:853", "DoQ server host:port")
	name       = flag.String("name", "example.lexa.", "query name")
	qtype      = flag.String("type", "A", "query type")
	count      = flag.Int("count", 1, "queries per connection, sent one after another on one connection")
	conns      = flag.Int("conns", 1, "number of connections, one after another")
	alpn       = flag.String("alpn", "doq", "ALPN protocol to offer")
	insecure   = flag.Bool("insecure", false, "do not verify the server certificate")
	caFile     = flag.String("ca", "", "PEM file of CA certificates to verify the server with")
	serverName = flag.String("servername", "", "TLS server name (default: host of -server)")
	id         = flag.Uint("id", 0, "DNS message ID to send (RFC 9250 requires 0; others test the server's refusal)")
	uni        = flag.Bool("uni", false, "send the query on a unidirectional stream (a protocol violation)")
	bad        = flag.String("bad", "", "break the framing (protocol violations): truncated, trailing or short")
	timeout    = flag.Duration("timeout", 5*time.Second, "time limit per connection attempt and per query")
	quiet      = flag.Bool("q", false, "print only failures and the summary")
	pause      = flag.Duration("pause", 0, "wait this long between queries on a connection")
	full       = flag.Bool("full", false, "print each whole reply (header, flags, every section) in dig's format")
	parallel   = flag.Bool("parallel", false, "run the -conns connections at the same time instead of one after another")
	latency    = flag.Bool("latency", false, "print the answered queries' times (50th, 99th percentile, largest) before the summary")
)

// took holds each answered query's time (stream opened to reply read), for -latency.
var (
	tookMu sync.Mutex
	took   []time.Duration
)

// query sends one message on a new stream of conn and returns the parsed reply.
func query(conn quic.Connection, msg []byte) (*dns.Msg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(msg)))
	framed = append(framed, msg...)
	switch *bad {
	case "truncated": // FIN before the announced length
		framed = framed[:len(framed)-3]
	case "trailing": // a second message on the same stream
		framed = append(framed, framed...)
	case "short": // FIN inside the length prefix
		framed = framed[:1]
	}
	if *uni {
		s, err := conn.OpenUniStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		s.Write(framed)
		s.Close()
		<-conn.Context().Done() // a correct server closes the connection
		return nil, context.Cause(conn.Context())
	}
	s, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	s.SetDeadline(time.Now().Add(*timeout))
	if _, err := s.Write(framed); err != nil {
		return nil, err
	}
	s.Close() // FIN: closes only our sending side
	reply, err := io.ReadAll(s)
	if err != nil {
		return nil, err
	}
	if len(reply) < 2 || int(binary.BigEndian.Uint16(reply)) != len(reply)-2 {
		return nil, fmt.Errorf("reply of %d bytes does not match its length prefix", len(reply))
	}
	m := new(dns.Msg)
	if err := m.Unpack(reply[2:]); err != nil {
		return nil, err
	}
	if m.Id != 0 {
		return nil, fmt.Errorf("reply has message ID %d, RFC 9250 requires 0", m.Id)
	}
	return m, nil
}

// runConn opens connection c and sends -count queries on it, one after another; it returns how many were answered
// and how many failed.
func runConn(c int, tlsConf *tls.Config, quicConf *quic.Config, msg []byte) (ok, failed int) {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	conn, err := quic.DialAddr(ctx, *server, tlsConf, quicConf)
	cancel()
	if err != nil {
		fmt.Printf(";; conn %d: connect failed: %v\n", c, err)
		return 0, *count
	}
	for i := 0; i < *count; i++ {
		if i > 0 {
			time.Sleep(*pause)
		}
		began := time.Now()
		m, err := query(conn, msg)
		if err == nil {
			tookMu.Lock()
			took = append(took, time.Since(began))
			tookMu.Unlock()
		}
		var appErr *quic.ApplicationError
		var streamErr *quic.StreamError
		if errors.As(err, &appErr) && appErr.Remote {
			fmt.Printf(";; conn %d query %d: server closed the connection with DoQ error 0x%x\n", c, i, uint64(appErr.ErrorCode))
		} else if errors.As(err, &streamErr) && streamErr.Remote {
			fmt.Printf(";; conn %d query %d: server reset the stream with DoQ error 0x%x\n", c, i, uint64(streamErr.ErrorCode))
		} else if err != nil {
			fmt.Printf(";; conn %d query %d: %v\n", c, i, err)
		}
		if err != nil {
			failed++
			continue
		}
		ok++
		if *full {
			fmt.Println(m.String())
		} else if !*quiet {
			fmt.Printf(";; conn %d query %d: rcode %s, %d answers\n", c, i, dns.RcodeToString[m.Rcode], len(m.Answer))
			for _, rr := range m.Answer {
				fmt.Println(rr.String())
			}
		}
	}
	conn.CloseWithError(0, "") // DOQ_NO_ERROR
	return ok, failed
}

func main() {
	flag.Parse()
	t, ok := dns.StringToType[*qtype]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown type %q\n", *qtype)
		os.Exit(2)
	}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(*name), t)
	q.Id = uint16(*id)
	msg, err := q.Pack()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	host, _, _ := net.SplitHostPort(*server)
	tlsConf := &tls.Config{NextProtos: []string{*alpn}, ServerName: host, InsecureSkipVerify: *insecure}
	if *serverName != "" {
		tlsConf.ServerName = *serverName
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		tlsConf.RootCAs = x509.NewCertPool()
		tlsConf.RootCAs.AppendCertsFromPEM(pem)
	}
	quicConf := &quic.Config{HandshakeIdleTimeout: *timeout, MaxIdleTimeout: 2 * *timeout}
	okN, failed, start := 0, 0, time.Now()
	if *parallel {
		// Every connection at once, each still one query after another: -conns queries in flight.
		type tally struct{ ok, failed int }
		done := make(chan tally)
		for c := 0; c < *conns; c++ {
			go func(c int) {
				ok, bad := runConn(c, tlsConf, quicConf, msg)
				done <- tally{ok, bad}
			}(c)
		}
		for c := 0; c < *conns; c++ {
			t := <-done
			okN, failed = okN+t.ok, failed+t.failed
		}
	} else {
		for c := 0; c < *conns; c++ {
			ok, bad := runConn(c, tlsConf, quicConf, msg)
			okN, failed = okN+ok, failed+bad
		}
	}
	fmt.Printf(";; elapsed %dms\n", time.Since(start).Milliseconds())
	if *latency && len(took) > 0 {
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		at := func(p float64) float64 { return float64(took[int(p*float64(len(took)-1))].Microseconds()) / 1000 }
		fmt.Printf(";; latency ms p50=%.2f p99=%.2f max=%.2f\n", at(0.50), at(0.99), at(1))
	}
	fmt.Printf("queries=%d ok=%d failed=%d\n", *count**conns, okN, failed)
	if failed > 0 {
		os.Exit(1)
	}
}
