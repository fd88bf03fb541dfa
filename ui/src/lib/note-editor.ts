// CodeMirror for the note body. Kept in its own module so the window loads it (and the
// Markdown language) only when the first note is opened: the list shows sooner and the window
// stays smaller when nothing is being edited (BENCHMARKS.md, "Desktop app").
import { EditorView, basicSetup } from 'codemirror';
import { markdown } from '@codemirror/lang-markdown';
import { Annotation, Compartment, EditorState, StateEffect, StateField, type Range } from '@codemirror/state';
import { Decoration, WidgetType, type DecorationSet } from '@codemirror/view';

export type { EditorView };

/**
 * Above this size a note is edited as plain text. Markdown is parsed from the top of the note
 * down to what is on screen; in a note of megabytes that work runs in 100 ms slices between
 * keystrokes, and typing lags (BENCHMARKS.md). Editors do the same for big files (VS Code's
 * large-file mode).
 */
export const PLAIN_TEXT_ABOVE = 256 * 1024;

/** The language of the note: Markdown, or none for a large note. */
const language = new Compartment();
const markdownLanguage = markdown();
const languageFor = (size: number) => (size > PLAIN_TEXT_ABOVE ? [] : markdownLanguage);

/** Whether the text can be edited: not in the Trash (restore first, as for the title). */
const access = new Compartment();
const EDITABLE: never[] = [];
const READ_ONLY = [EditorState.readOnly.of(true), EditorView.editable.of(false)];

/** Marks a change that put the store's text in the editor: not an edit to save back. */
const fromStore = Annotation.define<boolean>();

/** An image attachment as the note shows it under its `![..](attachment:ID)` line. */
export interface InlineImage {
  src: string;
  alt: string;
}

const setImages = StateEffect.define<Map<string, InlineImage>>();
const ATTACHMENT_IMAGE = /!\[[^\]\n]*\]\(attachment:([0-9a-f-]{36})\)/g;

class ImageWidget extends WidgetType {
  constructor(readonly image: InlineImage) {
    super();
  }
  eq(other: ImageWidget) {
    return other.image.src === this.image.src;
  }
  toDOM() {
    const img = document.createElement('img');
    img.src = this.image.src;
    img.alt = this.image.alt;
    img.className = 'cm-attachment-image';
    img.dataset.testid = 'inline-image';
    return img;
  }
}

/** The images under their lines, from the note's attachments (none in a large note). */
const inlineImages = StateField.define<{ images: Map<string, InlineImage>; decorations: DecorationSet }>({
  create: () => ({ images: new Map(), decorations: Decoration.none }),
  update(value, tr) {
    let images = value.images;
    for (const e of tr.effects) if (e.is(setImages)) images = e.value;
    if (images === value.images && !tr.docChanged) return value;
    return { images, decorations: decorate(tr.state, images) };
  },
  provide: (f) => EditorView.decorations.from(f, (v) => v.decorations),
});

function decorate(state: EditorState, images: Map<string, InlineImage>): DecorationSet {
  if (images.size === 0 || state.doc.length > PLAIN_TEXT_ABOVE) return Decoration.none;
  const text = state.doc.toString();
  const found: Range<Decoration>[] = [];
  for (const m of text.matchAll(ATTACHMENT_IMAGE)) {
    const image = m[1] === undefined ? undefined : images.get(m[1]);
    if (!image || m.index === undefined) continue;
    const line = state.doc.lineAt(m.index);
    found.push(Decoration.widget({ widget: new ImageWidget(image), block: true, side: 1 }).range(line.to));
  }
  return Decoration.set(found, true);
}

/** Shows these images under the lines that refer to them. */
export function showInlineImages(view: EditorView, images: Map<string, InlineImage>): void {
  view.dispatch({ effects: setImages.of(images) });
}

/**
 * A Markdown editor in `parent`; `onEdit` runs after each change the user makes, `onFiles` with
 * files pasted or dropped into the text (they become attachments).
 */
export function createNoteEditor(
  parent: HTMLElement,
  onEdit: () => void,
  onFiles: (files: File[]) => void = () => {},
): EditorView {
  const files = (list: FileList | null | undefined) => Array.from(list ?? []);
  return new EditorView({
    parent,
    state: EditorState.create({
      doc: '',
      extensions: [
        basicSetup,
        language.of(languageFor(0)),
        access.of(EDITABLE),
        EditorView.lineWrapping,
        inlineImages,
        EditorView.domEventHandlers({
          paste(event) {
            const pasted = files(event.clipboardData?.files);
            if (pasted.length === 0) return false;
            event.preventDefault();
            onFiles(pasted);
            return true;
          },
          drop(event) {
            const dropped = files(event.dataTransfer?.files);
            if (dropped.length === 0) return false;
            event.preventDefault();
            onFiles(dropped);
            return true;
          },
        }),
        EditorView.contentAttributes.of({ 'aria-label': 'Note text', 'data-testid': 'editor-body' }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged && !update.transactions.some((t) => t.annotation(fromStore))) onEdit();
        }),
      ],
    }),
  });
}

/** Shows `text`, keeping the cursor where it was as far as the new text allows. */
export function replaceText(view: EditorView, text: string): void {
  const head = Math.min(view.state.selection.main.head, text.length);
  view.dispatch({
    changes: { from: 0, to: view.state.doc.length, insert: text },
    selection: { anchor: head },
    annotations: fromStore.of(true),
    // Only when the kind changes: the same extension again would still restart the parse.
    effects:
      language.get(view.state) === languageFor(text.length) ? [] : language.reconfigure(languageFor(text.length)),
  });
}

/** Locks or unlocks the text (a note in the Trash is read-only until restored). */
export function setReadOnly(view: EditorView, readOnly: boolean): void {
  const wanted = readOnly ? READ_ONLY : EDITABLE;
  if (access.get(view.state) !== wanted) view.dispatch({ effects: access.reconfigure(wanted) });
}
