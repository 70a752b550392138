package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// PreloadKeys stores keys 0..n-1 as keys of exactly keyLen bytes ("k"
// and the zero-padded id) with size-byte values and flags 0, over conns
// connections, with noreply sets closed by a meta no-op per batch. The
// memory mode uses it to size items as a deployment's (20-byte keys, no
// client flags), where the load generator's own keys are 14 bytes with
// flags.
func PreloadKeys(ctx context.Context, addr string, conns, n, keyLen, size int) error {
	if keyLen < 2 || keyLen > 250 || len(strconv.Itoa(max(n-1, 0)))+1 > keyLen {
		return fmt.Errorf("key length %d cannot hold %d keys", keyLen, n)
	}
	per := (n + conns - 1) / conns
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		lo, hi := i*per, min((i+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = preloadKeyRange(ctx, addr, lo, hi, keyLen, size)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func preloadKeyRange(ctx context.Context, addr string, lo, hi, keyLen, size int) error {
	const batch = 200
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	rd := bufio.NewReader(c)
	val := make([]byte, size)
	for i := range val {
		val[i] = 'a' + byte(i%26)
	}
	var buf []byte
	for id := lo; id < hi; id += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf = buf[:0]
		for j := id; j < min(id+batch, hi); j++ {
			buf = append(buf, "set k"...)
			d := strconv.Itoa(j)
			for range keyLen - 1 - len(d) {
				buf = append(buf, '0')
			}
			buf = append(buf, d...)
			buf = append(buf, " 0 0 "...)
			buf = strconv.AppendInt(buf, int64(size), 10)
			buf = append(buf, " noreply\r\n"...)
			buf = append(buf, val...)
			buf = append(buf, "\r\n"...)
		}
		buf = append(buf, "mn\r\n"...)
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(buf); err != nil {
			return err
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return err
		}
		if line != "MN\r\n" {
			return fmt.Errorf("preload: %q", line)
		}
	}
	return nil
}
