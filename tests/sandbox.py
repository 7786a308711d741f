"""``make sandbox``: two real Synapse homeservers, the bridge between them, and a message
crossing each way, so a newcomer sees Passerelle work before reading any code.

Everything lives in ``.sandbox/`` (recreated on each run) and listens on 127.0.0.1 only. In an
interactive terminal it keeps running until Ctrl-C so you can log in with any Matrix client;
elsewhere (or with ``--once``) it stops after the demonstration.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import uuid
from pathlib import Path

import dkim
from mautrix.types import EventType, RoomID

from tests.email_world import CLAIRE, EmailWorld, compose, send_mail, sign, start_email_world
from tests.harness.bridge import REPO_ROOT
from tests.harness.prosody import prosody_available
from tests.world import ADMIN_TOKEN, World, start_world
from tests.xmpp_world import XmppWorld, start_xmpp_world
from tests.xmpp_world import banner as xmpp_banner
from tests.xmpp_world import demo as xmpp_demo

PASSWORD = "passerelle-sandbox"


def _banner(world: World) -> str:
    return f"""
Passerelle sandbox is running (everything on 127.0.0.1; files in {world.root})

  bund.test   (German Matrix)  {world.bund.url}
  tchap.test  (Tchap)          {world.tchap.url}
  bridge                       {world.bridge_url}   metrics: {world.bridge_url}/metrics
  status page                  {world.bridge_url}/_passerelle/status   token: {ADMIN_TOKEN}

Log in with any Matrix client (homeserver URL above), password "{PASSWORD}":
  on bund.test:  max, erika, anna        on tchap.test: jean.dupont-interieur.gouv.fr
Linked rooms: #main, #relay (relay mode on Tchap), #restr (refused: restricted Tchap room)
Bridge config: {world.config_path}
Bridge log:    {world.bridge.log_path}
"""


async def _cross(world: World, sender: str, room: str, receiver: str, target_room: str,
                 text: str) -> None:  # fmt: skip
    await world.users[sender].send_text(world.rooms[room], text)
    seen = await world.users[receiver].wait_for(
        world.rooms[target_room], lambda e: text in e.get("content", {}).get("body", "")
    )
    member = await world.users[receiver].client.get_state_event(
        RoomID(world.rooms[target_room]), EventType.ROOM_MEMBER, seen["sender"]
    )
    print(f"  {room:>11} → {target_room:<11} {member.displayname}: {seen['content']['body']}")


def _mail_banner(world: EmailWorld) -> str:
    return f"""
Mail sandbox (its own homeservers and bridge; files in {world.root})

  bund.test   {world.bund.url}      tchap.test  {world.tchap.url}
  bridge SMTP 127.0.0.1:{world.inbound["mail"]}  (mail for {world.address("mail")})
  relay       127.0.0.1:{world.relay.port}  (what the bridge mails lands here)
  users (password "{PASSWORD}"): max on bund.test, jean.dupont-interieur.gouv.fr on tchap.test
"""


async def _mail_demo(world: EmailWorld, tag: str) -> None:
    """Claire mails the link from her mailbox; Max answers in the room and the answer is mailed."""
    subject, text = f"Lagebericht ({tag})", "Anbei der Bericht, bitte bis Freitag prüfen."
    report = ("Lagebericht.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")
    msg = compose(CLAIRE, world.address("mail"), subject, text, name="Claire Martin",
                  attachment=report)  # fmt: skip
    await send_mail(world, "mail", sign(msg, world.claire_key.private_pem), CLAIRE)
    for user, room in (("max", "bund:wg"), ("jean", "tchap:wg")):
        seen = await world.users[user].wait_for(
            world.rooms[room], lambda e: text in e.get("content", {}).get("body", "")
        )
        member = await world.users[user].client.get_state_event(
            RoomID(world.rooms[room]), EventType.ROOM_MEMBER, seen["sender"]
        )
        file = await world.users[user].wait_for(
            world.rooms[room], lambda e: e.get("content", {}).get("filename") == report[0],
            after=seen["event_id"],
        )  # fmt: skip
        print(f"  mail → {room:<9} {member.displayname}: {seen['content']['body']!r}, then "
              f"{file['content']['filename']}")  # fmt: skip
    answer = f"Danke, Claire! ({tag})"
    await world.users["max"].send_text(world.rooms["bund:wg"], answer)
    mailed = await world.relay.wait_for(lambda m: answer.encode() in m.raw)
    signed = "DKIM signature valid" if dkim.verify(mailed.raw, dnsfunc=world.dns.txt) else "no DKIM"
    print(f"  bund:wg → mail to {', '.join(mailed.recipients)}: From {mailed.message['From']}, "
          f"Subject {mailed.message['Subject']!r}, {signed}")  # fmt: skip


async def main(once: bool) -> int:
    root = REPO_ROOT / ".sandbox"
    shutil.rmtree(root, ignore_errors=True)
    print("Starting two Synapse homeservers and the bridge…", flush=True)
    world = await start_world(Path(root), password=PASSWORD)
    mail_world: EmailWorld | None = None
    xmpp_world: XmppWorld | None = None
    try:
        print(_banner(world))
        tag = uuid.uuid4().hex[:4]
        print("A message crossing each way:")
        await _cross(world, "max", "bund:main", "jean", "tchap:main", f"Hallo aus Berlin ({tag})")
        await _cross(world, "jean", "tchap:main", "max", "bund:main", f"Bonjour de Paris ({tag})")
        await _cross(world, "max", "bund:relay", "jean", "tchap:relay", f"Über den Relay ({tag})")
        print("\nStarting the mail sandbox…", flush=True)
        mail_world = await start_email_world(Path(root) / "mail", password=PASSWORD)
        print(_mail_banner(mail_world))
        print("A mail arriving in the rooms, and the answer mailed back:")
        await _mail_demo(mail_world, tag)
        no_xmpp = prosody_available()
        if no_xmpp is None:
            print("\nStarting the XMPP sandbox…", flush=True)
            xmpp_world = await start_xmpp_world(Path(root) / "xmpp", password=PASSWORD)
            print(xmpp_banner(xmpp_world))
            print("A message from the MUC reaching both Matrix rooms, and an answer:")
            await xmpp_demo(xmpp_world, tag)
        else:
            print(f"\nNo XMPP sandbox: {no_xmpp}")
        if once:
            return 0
        print("\nPress Ctrl-C to stop the sandbox.")
        await asyncio.Event().wait()
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        if xmpp_world is not None:
            await xmpp_world.stop()
        if mail_world is not None:
            await mail_world.stop()
        await world.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="stop after the demonstration")
    args = parser.parse_args()
    try:
        sys.exit(asyncio.run(main(args.once or not sys.stdin.isatty())))
    except KeyboardInterrupt:
        sys.exit(0)
