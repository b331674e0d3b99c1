/*
 * handoff.h - passing an idle keep-alive client connection from a worker
 * that is leaving (recycled, reloaded, scaled down, over max_rss) to one
 * that serves, so that the client keeps its connection and pays for no new
 * handshake. A SOCK_SEQPACKET socket pair, created once by the master and
 * inherited by every worker: a leaving worker sends the descriptor on one
 * end (SCM_RIGHTS), and whichever serving worker reads the other end first
 * adopts it. Only idle connections travel (nothing of the next request has
 * been read), so no state goes with them but the socket.
 * Runs in workers; the master creates the pair and drains it when no worker
 * serves. Convention: 0 / fd on success, -1 with errno.
 */
#ifndef PF_HANDOFF_H
#define PF_HANDOFF_H

/* fds[0] is for sending, fds[1] for receiving; both non-blocking and
 * close-on-exec (a binary upgrade's new master makes its own). */
int handoff_pair(int fds[2]);

/* Connections sent in one message at most. */
#define HANDOFF_BATCH 16

/* Sends n (1..HANDOFF_BATCH) connections in one message; the caller then
 * closes its own copies. -1 (EAGAIN when the queue is full): keep or close
 * the connections as before. */
int handoff_send(int sock, const int *fds, int n);

/* The connections of one message (close-on-exec) into fds[HANDOFF_BATCH]:
 * how many, or -1: EAGAIN when the queue is empty, EMFILE when the
 * descriptors could not be received (the kernel closed them). */
int handoff_recv(int sock, int *fds);

/* Closes every connection waiting in the queue; returns how many. */
int handoff_drain(int sock);

#endif
