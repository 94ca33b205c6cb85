"""A one-node OpenStack Swift for camveil's tests (Debian's swift packages).

  swift_node.py rings DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT
      builds the three one-device rings in DIR (RingBuilder in one process: about 1 s, against about 10 s
      for nine swift-ring-builder runs).
  swift_node.py serve CONF SERVER SWIFT_CONF
      runs one server (proxy-server, account-server, container-server, object-server) in this process,
      reading the hash settings and storage policies from SWIFT_CONF instead of /etc/swift/swift.conf, so
      a test never writes outside its own directory.
"""
import sys


def build_rings(swift_dir, ports):
    from swift.common.ring import RingBuilder

    for name, port in zip(("account", "container", "object"), ports):
        builder = RingBuilder(4, 1, 1)  # 16 partitions, one replica, min_part_hours 1
        builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 100})
        builder.rebalance()
        builder.get_ring().save(f"{swift_dir}/{name}.ring.gz")


def serve(conf, server, swift_conf):
    import swift.common.utils as utils

    # Must be set before anything imports swift.common.storage_policy, which reads it at import.
    utils.SWIFT_CONF_FILE = swift_conf
    from swift.common.wsgi import run_wsgi

    return run_wsgi(conf, server)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "rings":
        build_rings(sys.argv[2], sys.argv[3:6])
    elif len(sys.argv) == 5 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2], sys.argv[3], sys.argv[4]))
    else:
        sys.exit(__doc__)
