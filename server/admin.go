package server

import "github.com/gocached/gocached/protocol"

// execAdmin answers the maintenance commands (lru_crawler, slabs, lru,
// watch, misbehave, refresh_certs, debugtime) whose machinery is not built
// yet.
func (c *conn) execAdmin() {
	c.replyError(protocol.ErrUnknownCommand)
}
