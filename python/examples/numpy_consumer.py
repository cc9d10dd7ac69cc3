#!/usr/bin/env python3
"""Numeric messages with numpy: publish arrays, consume them in place, one batch at a time.

Each message is one trade: a structured record (price, quantity, side). The consumer reads
batches in two ways:
  * per message, numpy.frombuffer(m.data, dtype) views the ring in place (no copy);
  * per batch, Batch.as_arrays() gives one view of the batch's bytes plus offset and length
    arrays, and a single gather turns the whole batch into one numpy array.

The zero-copy rule: a numpy array made from m.data (or from as_arrays().data) points INTO the
ring, so it must be deleted (or copied) before the batch is released; releasing while one is
alive raises BufferError.
"""

import numpy as np

import pushpoll

TRADE = np.dtype([("price", "<f8"), ("qty", "<i4"), ("side", "u1"), ("pad", "V3")])


def main():
    rng = np.random.default_rng(7)
    with pushpoll.Hub() as hub:
        topic = hub.topic("trades", capacity=1 << 22, overflow="overwrite")
        sub = topic.subscribe(start="oldest")

        # Publish: any buffer works; a numpy record is copied into the ring as it is.
        trades = np.zeros(50_000, dtype=TRADE)
        trades["price"] = 100 + rng.standard_normal(len(trades)).cumsum() * 0.01
        trades["qty"] = rng.integers(1, 100, len(trades))
        trades["side"] = rng.integers(0, 2, len(trades))
        for record in trades:
            topic.publish(record.tobytes(), tag=int(record["side"]))

        # Per message, in place.
        with sub.poll(max_messages=1000) as batch:
            notional = 0.0
            for m in batch:
                t = np.frombuffer(m.data, dtype=TRADE)[0]  # a view into the ring
                notional += float(t["price"]) * int(t["qty"])
                del t  # the view must not outlive the batch
        print(f"first {len(batch)} trades: notional {notional:,.2f}")

        # Per batch: one gather for the whole batch.
        vwap_num = vwap_den = 0.0
        count = 0
        while True:
            with sub.poll(max_messages=8192) as batch:
                if not len(batch):
                    break
                arrays = batch.as_arrays()
                raw = np.frombuffer(arrays.data, dtype=np.uint8)
                offsets = np.asarray(arrays.offsets)
                assert np.all(np.asarray(arrays.lengths) == TRADE.itemsize)
                # Copy every record out of the ring in one step (fancy indexing copies).
                rows = raw[offsets[:, None] + np.arange(TRADE.itemsize)].view(TRADE).ravel()
                del raw  # before the batch is released
                vwap_num += float((rows["price"] * rows["qty"]).sum())
                vwap_den += float(rows["qty"].sum())
                count += len(rows)
        print(f"next {count} trades, batch by batch: VWAP {vwap_num / vwap_den:.4f}")
        expect = trades[1000:]
        print(f"check:                          VWAP "
              f"{float((expect['price'] * expect['qty']).sum() / expect['qty'].sum()):.4f}")


if __name__ == "__main__":
    main()
