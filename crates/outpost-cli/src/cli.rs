//! The command line: every command and flag, declared with clap.

use clap::{Args as ClapArgs, Parser, Subcommand};
use std::path::PathBuf;

const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 invalid input or too \
large (a server address too), 5 data directory in use, 6 database unreadable (not a database, \
corrupt, too new), 7 disk full or read-only, 8 offline (server unreachable), 9 not signed in, \
signed out by the server, or the sign-in cannot be read (keychain, token file), \
10 this app is too old for the server, 11 sync finished with conflicts or dead letters, 12 the \
sync doctor found records that differ between this device and the server.";

#[derive(Debug, Parser)]
#[command(name = "outpost", version, about = "Outpost notes from the command line", after_help = EXIT_CODES)]
pub struct Args {
    /// The data directory [default: $OUTPOST_DATA_DIR, else the app's own data directory].
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print machine-readable JSON (errors too, as {code, message} on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, edit, list, search and delete notes.
    #[command(subcommand)]
    Note(NoteCmd),
    /// Manage notebooks.
    #[command(subcommand)]
    Notebook(NotebookCmd),
    /// Read and change preferences.
    #[command(subcommand)]
    Pref(PrefCmd),
    /// What is waiting to be sent to the server.
    #[command(subcommand)]
    Outbox(OutboxCmd),
    /// Counts: notes, pending and failed changes, conflicts.
    Status,
    /// Write every note not in the Trash to DIR as Markdown, one subfolder per notebook. DIR
    /// must be new, empty, or an earlier export (whose files are the only ones replaced).
    Export {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Import the .md, .markdown and .txt files under DIR (a first-level subfolder becomes the
    /// notebook); notes already here (same id) and unreadable files are skipped and listed.
    Import {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Create N realistic test notes quickly (QA helper); prints how many and how long it took.
    Seed(SeedArgs),
    /// Create an account on a sync server and sign this device in.
    Register(AuthArgs),
    /// Sign this device in to an account on a sync server.
    Login(AuthArgs),
    /// Sign this device out (notes and pending changes stay).
    Logout,
    /// Sync once and report; with --watch keep syncing (pokes, timer) until Ctrl-C.
    Sync {
        #[arg(long)]
        watch: bool,
    },
    /// Attach a file (a photo, a PDF...) to a note: it is copied into the data directory and
    /// linked at the end of the note; it goes to the server with the next sync.
    Attach {
        /// Note id (or a unique prefix of it).
        note: String,
        file: PathBuf,
    },
    /// List attachments (of one note, or of all) with where each stands.
    Attachments {
        /// Note id (or a unique prefix of it).
        note: Option<String>,
    },
    /// One attachment: fetch it to a file, or remove it from its note.
    #[command(subcommand)]
    Attachment(AttachmentCmd),
    /// Notes in conflict, with both versions.
    Conflicts,
    /// Resolve a conflict with mine, theirs, or the text of a file.
    Resolve {
        /// Note id (or its last digits).
        id: String,
        #[arg(long, conflicts_with_all = ["theirs", "file"])]
        mine: bool,
        #[arg(long, conflicts_with = "file")]
        theirs: bool,
        /// The merged text ("-" for standard input).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Changes the server refused (dead letters), with its reasons.
    Failed,
    /// Send a dead letter again (as a new change).
    Retry { id: String },
    /// Drop a dead letter; the note goes back to the server's version of those fields.
    Discard { id: String },
    /// Check that this device holds exactly what the server holds (counts and checksums), name
    /// every note that differs, and with --repair fix them by re-pulling from the server.
    Doctor {
        /// Rewrite what differs from the server's copy and send again what only this device
        /// has; then check again.
        #[arg(long)]
        repair: bool,
        /// Check without syncing first (differences then include what a sync would fix).
        #[arg(long)]
        no_sync: bool,
    },
}

#[derive(Debug, ClapArgs)]
pub struct AuthArgs {
    /// The sync server, e.g. http://127.0.0.1:8787
    #[arg(long, env = "OUTPOST_SERVER_URL")]
    pub server: String,
    #[arg(long, env = "OUTPOST_EMAIL")]
    pub email: String,
    /// Read the password from standard input (else $OUTPOST_PASSWORD).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, ClapArgs)]
pub struct BodyArgs {
    /// The body text (Markdown).
    #[arg(long, conflicts_with = "body_file")]
    pub body: Option<String>,
    /// Read the body from a file ("-" for standard input).
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum NoteCmd {
    /// Create a note; prints its id.
    Add {
        #[arg(long, short, default_value = "")]
        title: String,
        #[command(flatten)]
        body: BodyArgs,
        /// Notebook name or id.
        #[arg(long, short)]
        notebook: Option<String>,
        /// A tag (repeat for more).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        pin: bool,
    },
    /// Change only the fields given.
    Edit {
        /// Note id (or a unique prefix of it).
        id: String,
        #[arg(long, short)]
        title: Option<String>,
        #[command(flatten)]
        body: BodyArgs,
        /// Move to this notebook (name or id).
        #[arg(long, short, conflicts_with = "no_notebook")]
        notebook: Option<String>,
        /// Take the note out of its notebook.
        #[arg(long)]
        no_notebook: bool,
        /// Replace the tags (comma-separated; empty to clear).
        #[arg(long, value_name = "TAGS")]
        tags: Option<String>,
        #[arg(long, conflicts_with = "unpin")]
        pin: bool,
        #[arg(long)]
        unpin: bool,
        #[arg(long, conflicts_with = "unarchive")]
        archive: bool,
        #[arg(long)]
        unarchive: bool,
    },
    /// Move a note to the Trash.
    Rm { id: String },
    /// Bring a note back from the Trash.
    Restore { id: String },
    /// Delete a note in the Trash for good.
    Purge { id: String },
    /// Delete everything in the Trash for good.
    EmptyTrash,
    /// List notes: pinned first, then most recently changed.
    Ls {
        /// Only this notebook (name or id).
        #[arg(long, short)]
        notebook: Option<String>,
        #[arg(long)]
        tag: Option<String>,
        #[arg(long, conflicts_with = "trash")]
        archived: bool,
        #[arg(long)]
        trash: bool,
        /// Notes per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this page token (printed at the end of a page).
        #[arg(long)]
        after: Option<String>,
        /// Every page, not just the first.
        #[arg(long)]
        all: bool,
    },
    /// Show one note in full.
    Show { id: String },
    /// Full-text search over titles and bodies.
    Search {
        query: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotebookCmd {
    Add {
        name: String,
    },
    Ls,
    Rename {
        notebook: String,
        name: String,
    },
    /// Delete a notebook; its notes are kept, unfiled.
    Rm {
        notebook: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PrefCmd {
    Get {
        key: String,
    },
    /// VALUE is JSON (true, 14, "dark") or else taken as text.
    Set {
        key: String,
        value: String,
    },
    Ls,
}

#[derive(Debug, Subcommand)]
pub enum OutboxCmd {
    Ls {
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, ClapArgs)]
pub struct SeedArgs {
    /// How many notes.
    pub count: u32,
    /// Put the notes in this notebook (name or id; created if there is none of that name).
    #[arg(long, short, value_name = "NAME")]
    pub notebook: Option<String>,
    /// Body size of each note in bytes [default: realistic bodies of a few hundred bytes; with
    /// --one-by-one 1024 bytes of filler].
    #[arg(long, value_name = "BYTES")]
    pub body_bytes: Option<usize>,
    /// Each note in its own transaction, as a typing user would (slower: for crash tests).
    /// Without it, notes are imported a thousand per transaction.
    #[arg(long)]
    pub one_by_one: bool,
    /// With --one-by-one: after every K creates, edit an earlier note (0: never).
    #[arg(long, default_value_t = 0, value_name = "K", requires = "one_by_one")]
    pub edit_every: u32,
    /// Makes the notes' text reproducible (default: a new seed each run, so seeding twice never
    /// makes two notes with the same text).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum AttachmentCmd {
    /// Write the attachment's file to DEST (downloading it first if it is not on this device).
    Get {
        /// Attachment id (or a unique prefix of it).
        id: String,
        dest: PathBuf,
    },
    /// Remove the attachment from its note (the removal syncs).
    Rm { id: String },
}
