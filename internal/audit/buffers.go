package audit

import "sync"

// bufferPool recycles the byte buffers JournaledPipeline.Append encodes
// journal entries in, so that a request does not leave a few kilobytes
// of garbage behind. The zero value is ready to use.
type bufferPool struct{ pool sync.Pool }

// maxPooledBuffer is the largest buffer kept: an event naming many
// patients or resources grows one far past the usual few kilobytes, and
// keeping it would pin that memory.
const maxPooledBuffer = 64 << 10

func (b *bufferPool) get() *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return p
	}
	s := make([]byte, 0, 4096)
	return &s
}

func (b *bufferPool) put(p *[]byte) {
	if cap(*p) > maxPooledBuffer {
		return
	}
	*p = (*p)[:0]
	b.pool.Put(p)
}
