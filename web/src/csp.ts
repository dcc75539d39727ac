// The page runs under a strict Content-Security-Policy: style-src 'self', no
// 'unsafe-inline' (static/handler.go sets it). xterm.js 6 writes some of its CSS into
// <style> elements it creates (the scrollbar's colours; the DOM renderer's cell size and
// theme) and, in the DOM renderer, some cells' colours into style attributes with
// setAttribute('style', ...). The policy blocks both: the DOM renderer would lose its
// colours and every such write would be a reported violation. What the policy does not
// govern is the CSSOM: constructable style sheets and element.style. So, before xterm
// starts, the page routes xterm's <style> text into constructable style sheets adopted
// by the document, and style attributes into element.style.cssText. The effect is the
// same CSS; the browser test checks that no violation is reported with either renderer.

export function installCspShims(doc: Document): void {
  const create = doc.createElement.bind(doc) as (tag: string, options?: ElementCreationOptions) => HTMLElement;
  (doc as { createElement: unknown }).createElement = (tag: string, options?: ElementCreationOptions): HTMLElement => {
    if (tag.toLowerCase() === 'style') return styleStandIn(doc, create);
    return create(tag, options);
  };

  const setAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (this: Element, name: string, value: string): void {
    if (name.toLowerCase() === 'style' && this instanceof HTMLElement) {
      this.style.cssText = String(value);
      return;
    }
    setAttribute.call(this, name, value);
  };
}

// styleStandIn returns what xterm gets for a <style> element: an inert <template> (even an
// empty <style> is reported as a violation when it enters the document) whose
// textContent lands in a constructable style sheet adopted by doc. xterm only appends
// it, sets its textContent and removes it; removing it drops the sheet.
function styleStandIn(doc: Document, create: (tag: string) => HTMLElement): HTMLElement {
  const el = create('template');
  el.dataset.xtermStyle = '';
  const sheet = new CSSStyleSheet();
  let text = '';
  Object.defineProperty(el, 'textContent', {
    configurable: true,
    get: () => text,
    set: (v: unknown) => {
      text = v == null ? '' : String(v);
      sheet.replaceSync(text);
    },
  });
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  const remove = el.remove.bind(el);
  el.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    remove();
  };
  return el;
}
