/**
 * Sockets that can be frozen: a Kafka client built on them (createKafka's socketFactory) goes silent — nothing it
 * writes leaves the process and nothing the brokers answer is read — until thawed, as a process paused by the OS or
 * cut off by the network would. While frozen, the coordinator hears no heartbeat from the client's group members.
 */
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ISocketFactory } from "kafkajs";

export interface Freezer {
  socketFactory: ISocketFactory;
  freeze(): void;
  thaw(): void;
}

export function createFreezer(): Freezer {
  const sockets = new Set<Socket>();
  let frozen = false;
  const held = new Map<Socket, unknown[][]>();
  const write = (socket: Socket, original: Socket["write"]) =>
    ((...args: unknown[]) => {
      if (!frozen) return (original as (...a: unknown[]) => boolean).apply(socket, args);
      held.get(socket)?.push(args);
      return true;
    }) as Socket["write"];
  const originals = new Map<Socket, Socket["write"]>();
  return {
    socketFactory: ({ host, port, ssl, onConnect }) => {
      const socket = ssl ? tlsConnect({ host, port, ...ssl }, onConnect) : connect({ host, port }, onConnect);
      sockets.add(socket);
      held.set(socket, []);
      originals.set(socket, socket.write);
      socket.write = write(socket, socket.write);
      if (frozen) socket.pause();
      socket.once("close", () => {
        sockets.delete(socket);
        held.delete(socket);
        originals.delete(socket);
      });
      return socket;
    },
    freeze() {
      frozen = true;
      for (const s of sockets) s.pause();
    },
    thaw() {
      frozen = false;
      for (const s of sockets) {
        const original = originals.get(s);
        for (const args of held.get(s)?.splice(0) ?? []) (original as (...a: unknown[]) => boolean).apply(s, args);
        s.resume();
      }
    },
  };
}
