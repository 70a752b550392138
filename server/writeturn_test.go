package server

import (
	"bytes"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFillIOV checks the descriptors of one vectored write: empty buffers
// skipped, a buffer cut at the turn's limit, at most maxIOV of them.
func TestFillIOV(t *testing.T) {
	bufs := [][]byte{make([]byte, 10), nil, make([]byte, 100), make([]byte, 5)}
	iov, n := fillIOV(nil, bufs, 50)
	if n != 50 || len(iov) != 2 || iov[0].Len != 10 || iov[1].Len != 40 {
		t.Fatalf("limit 50: %d bytes in %+v", n, iov)
	}
	if iov, n = fillIOV(iov, bufs, 1<<20); n != 115 || len(iov) != 3 {
		t.Fatalf("no limit: %d bytes in %d buffers", n, len(iov))
	}
	many := make([][]byte, maxIOV+10)
	for i := range many {
		many[i] = []byte{1}
	}
	if iov, n = fillIOV(iov, many, 1<<20); n != maxIOV || len(iov) != maxIOV {
		t.Fatalf("%d buffers: %d bytes in %d descriptors", len(many), n, len(iov))
	}
}

// TestWriteTurnsBounded writes replies far larger than a turn to a client
// that reads slowly, through both write paths, and checks that no system
// call is given more than writeCallMax bytes, none starts once the turn
// has reached writeTurnMax (the connection yields first, also before a
// write that follows one which used up the turn), and every byte arrives
// in order.
func TestWriteTurnsBounded(t *testing.T) {
	if !rawSocketIO {
		t.Skip("no raw socket writes here")
	}
	s, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.wgate.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := newConn(s, nc, 1)
	if c.io.raw == nil {
		t.Skip("no raw socket")
	}
	var calls, overTurn int
	check := func(n int) {
		calls++
		if n > writeCallMax || c.io.turn >= writeTurnMax {
			overTurn++
		}
	}
	send, sendV := c.io.send, c.io.sendV
	c.io.send = func(fd uintptr, p []byte) (int, syscall.Errno) {
		check(len(p))
		return send(fd, p)
	}
	c.io.sendV = func(fd uintptr, iov []syscall.Iovec) (int, syscall.Errno) {
		total := 0
		for _, v := range iov {
			total += int(v.Len)
		}
		check(total)
		return sendV(fd, iov)
	}

	value := bytes.Repeat([]byte("0123456789abcdef"), (3<<20)/16)
	var want []byte
	for _, p := range [][]byte{[]byte("VALUE k 0 3145728\r\n"), value, []byte("\r\n")} {
		want = append(want, p...)
	}
	want = append(want, value[:1<<20]...)

	var got bytes.Buffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a slow reader: the socket fills and drains many times
		defer wg.Done()
		b := make([]byte, 64<<10)
		_ = client.SetReadDeadline(time.Now().Add(time.Minute))
		for got.Len() < len(want) {
			n, err := client.Read(b)
			got.Write(b[:n])
			if err != nil && err != io.EOF {
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	c.out = [][]byte{[]byte("VALUE k 0 3145728\r\n"), value, []byte("\r\n")}
	if n, err := c.writeOut(); err != nil || n != int64(len(value)+21) {
		t.Fatalf("vectored write: %d bytes, %v", n, err)
	}
	if n, err := c.write(value[:1<<20]); err != nil || n != 1<<20 {
		t.Fatalf("write: %d bytes, %v", n, err)
	}
	wg.Wait()
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("the client got %d bytes, not the %d written", got.Len(), len(want))
	}
	if overTurn > 0 || calls < (len(want)+writeCallMax-1)/writeCallMax {
		t.Fatalf("%d of %d system calls went past a call of %d bytes or a turn of %d", overTurn, calls, writeCallMax, writeTurnMax)
	}
}

// TestContendedTurns: while two or more connections take write turns,
// turns and system calls are cut to contendedTurn; a connection counts
// once, until its write completes or waits for its socket.
func TestContendedTurns(t *testing.T) {
	s, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.wgate.close()
	g := &s.wgate
	limits := func(turn, call int) {
		t.Helper()
		if g.turnMax() != turn || g.callMax() != call {
			t.Fatalf("%d contending: turn %d, call %d; want %d, %d", g.contending.Load(), g.turnMax(), g.callMax(), turn, call)
		}
	}
	limits(writeTurnMax, writeCallMax)
	a, b := newConn(s, nil, 1), newConn(s, nil, 2)
	a.yieldWrite()
	a.yieldWrite()
	limits(writeTurnMax, writeCallMax) // one writer taking turns
	b.yieldWrite()
	limits(contendedTurn, contendedTurn)
	a.stopContending()
	a.stopContending()
	limits(writeTurnMax, writeCallMax)
	if b.stopContending(); g.contending.Load() != 0 {
		t.Fatalf("%d contending after both stopped", g.contending.Load())
	}
}
