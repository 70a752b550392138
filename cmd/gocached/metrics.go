package main

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/gocached/gocached/server/metrics"
)

// startMetrics serves Prometheus metrics for srv on addr (-o
// metrics_listen=host:port), if addr is set, and returns the function that
// stops the listener. A srv that cannot report its stats (a test's fake)
// gets no listener.
func startMetrics(addr string, srv any, logger *zap.Logger) (stop func(), err error) {
	src, ok := srv.(metrics.Source)
	if addr == "" || !ok {
		if addr != "" {
			logger.Warn("metrics_listen: this server reports no stats; not serving metrics")
		}
		return func() {}, nil
	}
	m, err := metrics.Listen(addr, src)
	if err != nil {
		return nil, err
	}
	logger.Info("serving metrics", zap.String("addr", "http://"+m.Addr().String()+"/metrics"))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			logger.Warn("metrics listener", zap.Error(err))
		}
	}, nil
}
