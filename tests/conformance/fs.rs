//! Conformance tests: fs.

use std::io::{ErrorKind, IoSlice, IoSliceMut, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use zsync::fs::{self, File, OpenOptions};
use zsync::{Group, Io};

use crate::support::{assert_canceled, TempDir};

#[track_caller]
fn assert_kind<T: std::fmt::Debug>(r: std::io::Result<T>, kind: ErrorKind) {
    match r {
        Err(e) => assert_eq!(e.kind(), kind, "expected {kind:?}, got {e:?}"),
        Ok(v) => panic!("expected {kind:?}, got Ok({v:?})"),
    }
}

fn write_then_read_at_offsets(io: &Io) {
    let dir = TempDir::new("fs-at");
    let f = File::create_new(io, dir.path().join("f")).unwrap();
    assert_eq!(f.write_at(b"hello", 0).unwrap(), 5);
    f.write_all_at(b"world", 10).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 15);

    let mut buf = [0xffu8; 15];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello\0\0\0\0\0world");
    let mut word = [0u8; 3];
    assert_eq!(f.read_at(&mut word, 11).unwrap(), 3);
    assert_eq!(&word, b"orl");
    assert_eq!(f.read_at(&mut word, 15).unwrap(), 0);
    assert_eq!(f.read_at(&mut word, 1000).unwrap(), 0);
    assert_kind(f.read_exact_at(&mut word, 13), ErrorKind::UnexpectedEof);

    // Positional I/O leaves the file offset alone.
    let mut rest = Vec::new();
    (&f).read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"hello\0\0\0\0\0world");
}

fn vectored_at_lands_in_order(io: &Io) {
    let dir = TempDir::new("fs-vec-at");
    let f = File::create_new(io, dir.path().join("f")).unwrap();
    let n = f
        .write_vectored_at(
            &[
                IoSlice::new(b"ab"),
                IoSlice::new(b""),
                IoSlice::new(b"cdef"),
                IoSlice::new(b"g"),
            ],
            3,
        )
        .unwrap();
    assert_eq!(n, 7);
    assert_eq!(
        fs::read(io, dir.path().join("f")).unwrap(),
        b"\0\0\0abcdefg"
    );

    let (mut a, mut b, mut c) = ([0u8; 1], [0u8; 4], [0u8; 8]);
    let n = f
        .read_vectored_at(
            &mut [
                IoSliceMut::new(&mut a),
                IoSliceMut::new(&mut b),
                IoSliceMut::new(&mut c),
            ],
            4,
        )
        .unwrap();
    assert_eq!(n, 6);
    assert_eq!(&a, b"b");
    assert_eq!(&b, b"cdef");
    assert_eq!(&c, b"g\0\0\0\0\0\0\0");
    assert_eq!(f.metadata().unwrap().len(), 10);
}

fn vectored_read_write_use_the_file_offset(io: &Io) {
    let dir = TempDir::new("fs-vec");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(io, dir.path().join("f"))
        .unwrap();
    let n = f
        .write_vectored(&[
            IoSlice::new(b"one"),
            IoSlice::new(b"two"),
            IoSlice::new(b"three"),
        ])
        .unwrap();
    assert_eq!(n, 11);
    assert_eq!(f.stream_position().unwrap(), 11);
    f.write_all(b"!").unwrap();

    f.rewind().unwrap();
    let (mut a, mut b) = ([0u8; 5], [0u8; 10]);
    let n = f
        .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
        .unwrap();
    assert_eq!(n, 12);
    assert_eq!(&a, b"onetw");
    assert_eq!(&b[..7], b"othree!");
    assert_eq!(f.read(&mut a).unwrap(), 0);
}

fn seek_start_end_current(io: &Io) {
    let dir = TempDir::new("fs-seek");
    let path = dir.path().join("f");
    fs::write(io, &path, b"0123456789").unwrap();
    let mut f = File::open(io, &path).unwrap();
    let mut buf = [0u8; 3];

    assert_eq!(f.seek(SeekFrom::Start(2)).unwrap(), 2);
    f.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"234");
    assert_eq!(f.seek(SeekFrom::Current(1)).unwrap(), 6);
    f.read_exact(&mut buf[..2]).unwrap();
    assert_eq!(&buf[..2], b"67");
    assert_eq!(f.seek(SeekFrom::Current(-8)).unwrap(), 0);
    assert_eq!(f.seek(SeekFrom::End(-3)).unwrap(), 7);
    let mut tail = String::new();
    f.read_to_string(&mut tail).unwrap();
    assert_eq!(tail, "789");
    assert_eq!(f.seek(SeekFrom::End(0)).unwrap(), 10);
    assert_kind(f.seek(SeekFrom::Current(-11)), ErrorKind::InvalidInput);

    // Through a shared reference too.
    let mut r = &f;
    assert_eq!(r.seek(SeekFrom::Start(9)).unwrap(), 9);
    assert_eq!(r.read(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], b'9');
}

fn append_mode_writes_at_the_end(io: &Io) {
    let dir = TempDir::new("fs-append");
    let path = dir.path().join("f");
    fs::write(io, &path, b"abc").unwrap();
    let mut f = OpenOptions::new().append(true).open(io, &path).unwrap();
    f.write_all(b"def").unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(b"ghi").unwrap();
    assert_eq!(fs::read_to_string(io, &path).unwrap(), "abcdefghi");
    // Append implies write-only unless `read` is set.
    let mut buf = [0u8; 1];
    assert!(f.read(&mut buf).is_err());
}

fn truncate_create_and_create_new(io: &Io) {
    let dir = TempDir::new("fs-open");
    let path = dir.path().join("f");
    fs::write(io, &path, b"long contents").unwrap();

    // Without truncate, writing overwrites in place.
    let mut f = OpenOptions::new().write(true).open(io, &path).unwrap();
    f.write_all(b"LONG").unwrap();
    drop(f);
    assert_eq!(fs::read(io, &path).unwrap(), b"LONG contents");

    let f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(io, &path)
        .unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0);
    drop(f);

    assert_kind(
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(io, &path),
        ErrorKind::AlreadyExists,
    );
    assert_kind(File::create_new(io, &path), ErrorKind::AlreadyExists);
    assert_kind(
        OpenOptions::new()
            .write(true)
            .open(io, dir.path().join("missing")),
        ErrorKind::NotFound,
    );
    let created = OpenOptions::new()
        .write(true)
        .create(true)
        .open(io, dir.path().join("created"))
        .unwrap();
    assert!(created.metadata().unwrap().is_file());
    // File::create truncates an existing file.
    fs::write(io, dir.path().join("created"), b"xyz").unwrap();
    drop(File::create(io, dir.path().join("created")).unwrap());
    assert_eq!(
        fs::metadata(io, dir.path().join("created")).unwrap().len(),
        0
    );
    // No access mode at all is invalid.
    assert_kind(OpenOptions::new().open(io, &path), ErrorKind::InvalidInput);
}

fn mode_and_custom_flags(io: &Io) {
    let dir = TempDir::new("fs-mode");
    let path = dir.path().join("private");
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(io, &path)
        .unwrap();
    assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);

    let link = dir.path().join("link");
    fs::symlink(io, &path, &link).unwrap();
    let err = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(io, &link)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
}

fn open_missing_is_not_found(io: &Io) {
    let dir = TempDir::new("fs-missing");
    let missing = dir.path().join("missing");
    assert_kind(File::open(io, &missing), ErrorKind::NotFound);
    assert_kind(File::open(io, missing.join("below")), ErrorKind::NotFound);
    assert_kind(fs::read(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::read_to_string(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::metadata(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::remove_file(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::remove_dir(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::read_dir(io, &missing), ErrorKind::NotFound);
    assert_kind(fs::canonicalize(io, &missing), ErrorKind::NotFound);
    assert_kind(
        fs::rename(io, &missing, dir.path().join("x")),
        ErrorKind::NotFound,
    );
    assert!(!fs::exists(io, &missing).unwrap());
}

fn set_len_grows_and_shrinks(io: &Io) {
    let dir = TempDir::new("fs-set-len");
    let path = dir.path().join("f");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(io, &path)
        .unwrap();
    f.write_all(b"hello").unwrap();

    f.set_len(8).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 8);
    assert_eq!(fs::read(io, &path).unwrap(), b"hello\0\0\0");
    assert_eq!(f.stream_position().unwrap(), 5, "set_len keeps the offset");

    f.set_len(2).unwrap();
    assert_eq!(fs::metadata(io, &path).unwrap().len(), 2);
    assert_eq!(fs::read(io, &path).unwrap(), b"he");

    let ro = File::open(io, &path).unwrap();
    assert!(ro.set_len(0).is_err());
    assert_eq!(fs::metadata(io, &path).unwrap().len(), 2);
}

fn metadata_of_files_dirs_and_links(io: &Io) {
    let dir = TempDir::new("fs-meta");
    let path = dir.path().join("f");
    fs::write(io, &path, b"12345").unwrap();

    let m = fs::metadata(io, &path).unwrap();
    assert!(m.is_file());
    assert!(!m.is_dir());
    assert_eq!(m.len(), 5);
    let fm = File::open(io, &path).unwrap().metadata().unwrap();
    assert_eq!((fm.ino(), fm.len()), (m.ino(), 5));

    let d = fs::metadata(io, dir.path()).unwrap();
    assert!(d.is_dir());
    assert!(!d.is_file());

    let link = dir.path().join("link");
    fs::symlink(io, "f", &link).unwrap();
    assert!(fs::symlink_metadata(io, &link)
        .unwrap()
        .file_type()
        .is_symlink());
    let followed = fs::metadata(io, &link).unwrap();
    assert!(followed.is_file());
    assert_eq!(followed.ino(), m.ino());
    assert_eq!(fs::read_link(io, &link).unwrap(), std::path::Path::new("f"));
    assert!(fs::exists(io, &link).unwrap());
}

fn sync_all_and_sync_data_succeed(io: &Io) {
    let dir = TempDir::new("fs-sync");
    let mut f = File::create(io, dir.path().join("f")).unwrap();
    f.write_all(b"durable").unwrap();
    f.flush().unwrap();
    f.sync_data().unwrap();
    f.sync_all().unwrap();
    assert_eq!(fs::read(io, dir.path().join("f")).unwrap(), b"durable");
}

fn rename_moves_and_replaces(io: &Io) {
    let dir = TempDir::new("fs-rename");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    fs::write(io, &a, b"from a").unwrap();
    fs::rename(io, &a, &b).unwrap();
    assert_kind(fs::metadata(io, &a), ErrorKind::NotFound);
    assert_eq!(fs::read(io, &b).unwrap(), b"from a");

    fs::write(io, &a, b"newer").unwrap();
    fs::rename(io, &a, &b).unwrap();
    assert_eq!(fs::read(io, &b).unwrap(), b"newer");
    assert!(!fs::exists(io, &a).unwrap());

    let (d1, d2) = (dir.path().join("d1"), dir.path().join("d2"));
    fs::create_dir(io, &d1).unwrap();
    fs::rename(io, &d1, &d2).unwrap();
    assert!(fs::metadata(io, &d2).unwrap().is_dir());
}

fn remove_file_and_empty_dir(io: &Io) {
    let dir = TempDir::new("fs-remove");
    let (f, d) = (dir.path().join("f"), dir.path().join("d"));
    fs::write(io, &f, b"x").unwrap();
    fs::create_dir(io, &d).unwrap();

    assert_kind(fs::remove_file(io, &d), ErrorKind::IsADirectory);
    assert_kind(fs::remove_dir(io, &f), ErrorKind::NotADirectory);
    fs::remove_file(io, &f).unwrap();
    assert!(!fs::exists(io, &f).unwrap());
    fs::remove_dir(io, &d).unwrap();
    assert!(!fs::exists(io, &d).unwrap());
    assert_eq!(fs::read_dir(io, dir.path()).unwrap().count(), 0);
}

fn remove_dir_on_non_empty_dir_errors(io: &Io) {
    let dir = TempDir::new("fs-remove-nonempty");
    let d = dir.path().join("d");
    fs::create_dir_all(io, d.join("inner")).unwrap();
    fs::write(io, d.join("inner/file"), b"x").unwrap();

    assert_kind(fs::remove_dir(io, &d), ErrorKind::DirectoryNotEmpty);
    assert!(fs::metadata(io, d.join("inner/file")).unwrap().is_file());
    fs::remove_dir_all(io, &d).unwrap();
    assert_kind(fs::metadata(io, &d), ErrorKind::NotFound);
}

fn create_dir_all_nested(io: &Io) {
    let dir = TempDir::new("fs-mkdir");
    let deep = dir.path().join("a/b/c/d");
    assert_kind(fs::create_dir(io, &deep), ErrorKind::NotFound);
    fs::create_dir_all(io, &deep).unwrap();
    for p in ["a", "a/b", "a/b/c", "a/b/c/d"] {
        assert!(
            fs::metadata(io, dir.path().join(p)).unwrap().is_dir(),
            "{p}"
        );
    }
    fs::create_dir_all(io, &deep).unwrap(); // already there: fine
    assert_kind(fs::create_dir(io, &deep), ErrorKind::AlreadyExists);
    fs::create_dir(io, deep.join("e")).unwrap();
    assert!(fs::metadata(io, deep.join("e")).unwrap().is_dir());
}

fn read_dir_lists_exactly_the_created_names(io: &Io) {
    let dir = TempDir::new("fs-readdir");
    for name in ["beta", "alpha", "gamma"] {
        fs::write(io, dir.path().join(name), name).unwrap();
    }
    fs::create_dir(io, dir.path().join("sub")).unwrap();
    fs::write(io, dir.path().join("sub/hidden"), b"").unwrap();

    let mut entries: Vec<(String, bool)> = fs::read_dir(io, dir.path())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.file_type().unwrap().is_dir(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("alpha".to_string(), false),
            ("beta".to_string(), false),
            ("gamma".to_string(), false),
            ("sub".to_string(), true),
        ]
    );
    let e = fs::read_dir(io, dir.path().join("sub"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(e.path(), dir.path().join("sub/hidden"));
}

fn whole_file_read_write(io: &Io) {
    let dir = TempDir::new("fs-whole");
    let path = dir.path().join("f");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(io, &path, &big).unwrap();
    assert_eq!(fs::read(io, &path).unwrap(), big);

    fs::write(io, &path, "short").unwrap();
    assert_eq!(fs::read_to_string(io, &path).unwrap(), "short");
    fs::write(io, &path, []).unwrap();
    assert_eq!(fs::read(io, &path).unwrap(), b"");

    fs::write(io, &path, [0xff, 0xfe]).unwrap();
    assert_kind(fs::read_to_string(io, &path), ErrorKind::InvalidData);
    assert_kind(fs::read(io, dir.path()), ErrorKind::IsADirectory);
}

fn copy_links_and_canonicalize(io: &Io) {
    let dir = TempDir::new("fs-copy");
    let (src, dst, hard) = (
        dir.path().join("src"),
        dir.path().join("dst"),
        dir.path().join("hard"),
    );
    fs::write(io, &src, b"copy me").unwrap();
    fs::set_permissions(io, &src, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(fs::copy(io, &src, &dst).unwrap(), 7);
    assert_eq!(fs::read(io, &dst).unwrap(), b"copy me");
    assert_eq!(fs::metadata(io, &dst).unwrap().mode() & 0o777, 0o640);

    fs::hard_link(io, &src, &hard).unwrap();
    assert_eq!(fs::metadata(io, &src).unwrap().nlink(), 2);
    assert_eq!(
        fs::metadata(io, &hard).unwrap().ino(),
        fs::metadata(io, &src).unwrap().ino()
    );
    assert_kind(fs::hard_link(io, &src, &hard), ErrorKind::AlreadyExists);

    fs::create_dir(io, dir.path().join("sub")).unwrap();
    let canon = fs::canonicalize(io, dir.path().join("sub/../sub/./../src")).unwrap();
    assert_eq!(
        canon,
        std::fs::canonicalize(dir.path()).unwrap().join("src")
    );
    assert!(canon.is_absolute());
}

fn permissions_via_file_and_path(io: &Io) {
    let dir = TempDir::new("fs-perm");
    let path = dir.path().join("f");
    let f = File::create(io, &path).unwrap();
    f.set_permissions(std::fs::Permissions::from_mode(0o444))
        .unwrap();
    let m = fs::metadata(io, &path).unwrap();
    assert_eq!(m.permissions().mode() & 0o777, 0o444);
    assert!(m.permissions().readonly());

    fs::set_permissions(io, &path, std::fs::Permissions::from_mode(0o604)).unwrap();
    assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o604);
}

fn try_clone_shares_the_offset(io: &Io) {
    let dir = TempDir::new("fs-clone");
    let path = dir.path().join("f");
    fs::write(io, &path, b"abcdef").unwrap();
    let mut a = File::open(io, &path).unwrap();
    let mut b = a.try_clone().unwrap();
    assert_ne!(a.as_raw_fd(), b.as_raw_fd());
    let mut buf = [0u8; 2];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ab");
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"cd");
    drop(a);
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ef");
    assert_eq!(b.io().model_name(), io.model_name());
}

fn std_conversions_round_trip(io: &Io) {
    let dir = TempDir::new("fs-std");
    let path = dir.path().join("f");
    let mut std_file = std::fs::File::create(&path).unwrap();
    std_file.write_all(b"from std").unwrap();
    let fd = std_file.as_raw_fd();

    // from_std keeps the descriptor and its offset.
    let mut f = File::from_std(io, std_file);
    assert_eq!(f.as_raw_fd(), fd);
    assert_eq!(f.as_fd().as_raw_fd(), fd);
    assert_eq!(f.stream_position().unwrap(), 8);
    f.write_all(b", via zsync").unwrap();

    let mut std_file = f.into_std();
    assert_eq!(std_file.as_raw_fd(), fd);
    std_file.write_all(b", back").unwrap();
    drop(std_file);
    assert_eq!(
        fs::read_to_string(io, &path).unwrap(),
        "from std, via zsync, back"
    );

    let f = File::open(io, &path).unwrap();
    let fd = f.as_raw_fd();
    let owned: OwnedFd = f.into();
    assert_eq!(owned.as_raw_fd(), fd);
    let mut again = File::from_std(io, std::fs::File::from(owned));
    let mut s = String::new();
    again.read_to_string(&mut s).unwrap();
    assert_eq!(s, "from std, via zsync, back");
    assert!(format!("{again:?}").contains("File"));
}

fn canceled_task_gets_canceled_from_file_ops(io: &Io) {
    let dir = TempDir::new("fs-cancel");
    let path = dir.path().join("f");
    fs::write(io, &path, b"before").unwrap();
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(io, &path)
        .unwrap();
    let mut listing = fs::read_dir(io, dir.path()).unwrap();

    io.cancel_current();
    let mut buf = [0u8; 6];
    assert_canceled(File::open(io, &path));
    assert_canceled(File::create(io, dir.path().join("new")));
    assert_canceled(f.read_at(&mut buf, 0));
    assert_canceled(f.write_at(b"after!", 0));
    assert_canceled(f.read(&mut buf));
    assert_canceled(f.write(b"after!"));
    assert_canceled(f.seek(SeekFrom::Start(0)));
    assert_canceled(f.metadata());
    assert_canceled(f.sync_all());
    assert_canceled(f.set_len(0));
    assert_canceled(f.try_clone());
    assert_canceled(fs::read(io, &path));
    assert_canceled(fs::write(io, &path, b"after!"));
    assert_canceled(fs::metadata(io, &path));
    assert_canceled(fs::remove_file(io, &path));
    assert_canceled(fs::create_dir_all(io, dir.path().join("x/y")));
    assert_canceled(fs::read_dir(io, dir.path()));
    assert_canceled(listing.next().unwrap());

    // Nothing happened: shielded operations see the file untouched and still work.
    let read = io.shielded(|| fs::read(io, &path));
    assert_eq!(read.unwrap(), b"before");
    io.shielded(|| f.write_all_at(b"B", 0)).unwrap();
    assert!(io
        .shielded(|| fs::exists(io, dir.path().join("new")))
        .is_ok_and(|e| !e));
    assert!(!dir.path().join("x").exists());
    // The cancel is still pending after the shield.
    assert_canceled(f.read_exact_at(&mut buf, 0));
    drop(f);
    assert_eq!(std::fs::read(&path).unwrap(), b"Before");
}

fn canceled_child_task_stops_at_its_next_file_op(io: &Io) {
    let dir = TempDir::new("fs-cancel-child");
    let path = dir.path().join("f");
    let dir_path = dir.path().to_path_buf();
    let p = path.clone();
    // A group task has a cancellation scope of its own on every model (a plain `spawn` on
    // Blocking runs inline in the caller's task, so canceling it would cancel the caller).
    let mut group = Group::new(io);
    group.spawn(move |io| {
        fs::write(io, &p, b"first").unwrap();
        let mut listing = fs::read_dir(io, &dir_path).unwrap();
        io.cancel_current();
        (
            fs::write(io, &p, b"second"),
            listing.next().unwrap().map(|_| ()),
        )
    });
    let mut results = group.join_all().unwrap();
    let (write, next) = results.pop().unwrap();
    assert_canceled(write);
    assert_canceled(next);
    // The parent was not canceled, and the canceled write never happened.
    assert_eq!(fs::read(io, &path).unwrap(), b"first");
}

fn passed_deadline_gives_timed_out(io: &Io) {
    let dir = TempDir::new("fs-deadline");
    let path = dir.path().join("f");
    fs::write(io, &path, b"x").unwrap();
    let r = io.timeout_until(crate::support::now(), |_| fs::read(io, &path));
    assert_kind(r, ErrorKind::TimedOut);
    let r = io.timeout_until(crate::support::now(), |_| {
        File::create(io, dir.path().join("g"))
    });
    assert_kind(r, ErrorKind::TimedOut);
    assert!(!fs::exists(io, dir.path().join("g")).unwrap());
    assert_eq!(fs::read(io, &path).unwrap(), b"x");
}

fn file_ops_in_spawned_tasks(io: &Io) {
    let dir = TempDir::new("fs-tasks");
    let tasks: Vec<_> = (0..4u8)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            io.spawn(move |io| -> std::io::Result<Vec<u8>> {
                let f = File::create_new(io, &path)?;
                f.write_all_at(&[i; 100], 0)?;
                f.write_all_at(b"end", 100)?;
                f.sync_data()?;
                fs::read(io, &path)
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let data = t.join().unwrap().unwrap();
        assert_eq!(data.len(), 103);
        assert!(data[..100].iter().all(|&b| b == i as u8));
        assert_eq!(&data[100..], b"end");
    }
    assert_eq!(fs::read_dir(io, dir.path()).unwrap().count(), 4);
}

/// Opening a FIFO blocks until the other end is opened. The reader and the writer are two tasks
/// of one runtime: this only completes if a blocking file operation of one task leaves the other
/// free to run. On Green the check runs on a nested runtime with a single worker, where a file
/// operation executed on the worker itself would deadlock.
fn blocking_file_operation_does_not_stall_other_tasks(io: &Io) {
    if !crate::support::has_concurrency(io) {
        return;
    }
    let dir = TempDir::new("fifo");
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let exchange = move |io: &Io| {
        let path = fifo.clone();
        let reader = io
            .concurrent(move |io| -> std::io::Result<Vec<u8>> {
                let mut f = File::open(io, &path)?; // blocks until the writer opens
                let mut v = Vec::new();
                f.read_to_end(&mut v)?;
                Ok(v)
            })
            .unwrap();
        let path = fifo.clone();
        let writer = io
            .concurrent(move |io| -> std::io::Result<()> {
                let mut f = OpenOptions::new().write(true).open(io, &path)?;
                f.write_all(b"through the fifo")
            })
            .unwrap();
        writer.join().unwrap().unwrap();
        assert_eq!(reader.join().unwrap().unwrap(), b"through the fifo");
    };
    if io.model() == zsync::ModelKind::Green {
        zsync::Builder::new(zsync::Model::Green)
            .worker_threads(1)
            .run(exchange);
    } else {
        exchange(io);
    }
}

/// A vector longer than `IOV_MAX` (1024 on Linux) is a partial transfer, never `EINVAL`:
/// `write_all_vectored`-style loops make progress, and the bytes land in order.
fn vectored_io_beyond_iov_max_is_partial_not_an_error(io: &Io) {
    let dir = TempDir::new("fs-iov-max");
    let f = File::create_new(io, dir.path().join("f")).unwrap();
    let bytes: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut written = 0;
    while written < bytes.len() {
        let slices: Vec<IoSlice<'_>> = bytes[written..].chunks(1).map(IoSlice::new).collect();
        let n = f.write_vectored_at(&slices, written as u64).unwrap();
        assert!(n > 0 && n <= 1024, "wrote {n} bytes from one-byte slices");
        written += n;
    }
    let mut back = vec![0u8; bytes.len()];
    let mut read = 0;
    while read < back.len() {
        let mut slices: Vec<IoSliceMut<'_>> =
            back[read..].chunks_mut(1).map(IoSliceMut::new).collect();
        let n = f.read_vectored_at(&mut slices, read as u64).unwrap();
        assert!(n > 0 && n <= 1024, "read {n} bytes into one-byte slices");
        read += n;
    }
    assert_eq!(back, bytes);
}

conformance! {
    on sim:
        vectored_io_beyond_iov_max_is_partial_not_an_error,
        write_then_read_at_offsets,
        vectored_at_lands_in_order,
        vectored_read_write_use_the_file_offset,
        seek_start_end_current,
        append_mode_writes_at_the_end,
        sync_all_and_sync_data_succeed,
        truncate_create_and_create_new,
        set_len_grows_and_shrinks,
        passed_deadline_gives_timed_out,
    ;
    not on sim:
        // The simulated disk is a flat namespace of files (directories are implicit, and
        // listing, linking, permissions, `try_clone` and std's own files are not simulated):
        // each of these also checks one of those.
        blocking_file_operation_does_not_stall_other_tasks,
        canceled_child_task_stops_at_its_next_file_op,
        canceled_task_gets_canceled_from_file_ops,
        copy_links_and_canonicalize,
        create_dir_all_nested,
        file_ops_in_spawned_tasks,
        metadata_of_files_dirs_and_links,
        mode_and_custom_flags,
        open_missing_is_not_found,
        permissions_via_file_and_path,
        read_dir_lists_exactly_the_created_names,
        remove_dir_on_non_empty_dir_errors,
        remove_file_and_empty_dir,
        rename_moves_and_replaces,
        std_conversions_round_trip,
        try_clone_shares_the_offset,
        whole_file_read_write,
}
