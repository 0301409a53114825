// SPDX-License-Identifier: GPL-2.0 OR MIT
// Tandem's XDP steering program (docs/packet-io.md).
//
// Frames for the addresses Tandem forwards go to the AF_XDP socket of the receiving queue;
// everything else goes on to the kernel (heartbeats, SSH, replies to the node's own ARP):
//   - IPv4 or IPv6 whose destination is in `v4_addrs` / `v6_addrs` (cluster addresses the node
//     owns and return addresses),
//   - ARP requests whose target address is in `v4_addrs`,
//   - ICMPv6 neighbour solicitations whose target address is in `v6_addrs`.
// One 802.1Q or 802.1ad tag is skipped. A queue without a socket passes its frames on.
//
// Built by build.sh: clang -O2 -g -target bpf -c steer.c, then llvm-strip -g
// (the test `bpf_object_matches_source` rebuilds it and compares the bytes).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} v4_addrs SEC(".maps");

struct in6 {
	__u8 b[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct in6);
	__type(value, __u8);
} v6_addrs SEC(".maps");

// 0: frames sent to a socket, 1: frames passed to the kernel.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int pass(void)
{
	__u32 k = 1;
	__u64 *c = bpf_map_lookup_elem(&counters, &k);
	if (c)
		*c += 1;
	return XDP_PASS;
}

static __always_inline int steer(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&counters, &k);
	if (c)
		*c += 1;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int tandem_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u8 *p = data;

	if (p + 14 > (__u8 *)end)
		return pass();
	__u16 proto = ((__u16)p[12] << 8) | p[13];
	p += 14;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (p + 4 > (__u8 *)end)
			return pass();
		proto = ((__u16)p[2] << 8) | p[3];
		p += 4;
	}

	if (proto == ETH_P_IP) {
		if (p + 20 > (__u8 *)end)
			return pass();
		__u32 dst;
		__builtin_memcpy(&dst, p + 16, 4);
		if (bpf_map_lookup_elem(&v4_addrs, &dst))
			return steer(ctx);
		return pass();
	}
	if (proto == ETH_P_ARP) {
		// htype 1, ptype 0x0800, hlen 6, plen 4, oper 1 (request); target IP at 24.
		if (p + 28 > (__u8 *)end)
			return pass();
		if (p[6] != 0 || p[7] != 1 || p[2] != 0x08 || p[3] != 0 || p[4] != 6 || p[5] != 4)
			return pass();
		__u32 tpa;
		__builtin_memcpy(&tpa, p + 24, 4);
		if (bpf_map_lookup_elem(&v4_addrs, &tpa))
			return steer(ctx);
		return pass();
	}
	if (proto == ETH_P_IPV6) {
		if (p + 40 > (__u8 *)end)
			return pass();
		struct in6 dst;
		__builtin_memcpy(&dst, p + 24, 16);
		if (bpf_map_lookup_elem(&v6_addrs, &dst))
			return steer(ctx);
		// Neighbour solicitation (ICMPv6 type 135) straight after the fixed header: the
		// target address follows type, code, checksum and 4 reserved bytes.
		if (p[6] == 58 && p + 40 + 24 <= (__u8 *)end && p[40] == 135) {
			struct in6 target;
			__builtin_memcpy(&target, p + 48, 16);
			if (bpf_map_lookup_elem(&v6_addrs, &target))
				return steer(ctx);
		}
		return pass();
	}
	return pass();
}

char _license[] SEC("license") = "Dual MIT/GPL";
